module tapsim/workloads/bracha

go 1.26
