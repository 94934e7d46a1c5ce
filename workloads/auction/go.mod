module tapsim/workloads/auction

go 1.22
