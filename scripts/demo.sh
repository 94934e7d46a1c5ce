#!/usr/bin/env bash
# The demo: bootstrap (Debian packages, npm, the napi addon, the gate plugin, the default
# guest image), then the main job: three QEMU VMs of the default guest on the reference's
# 3x3 latency matrix, each pinging the others from a boot-time command while every slice
# and frame is recorded; summarise and replay that trace. Then in-process Bracha on the
# 9-node AWS matrix: record, replay, and diff against another seed over a jittery topology.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=${TAPSIM_DEMO_DIR:-demo-out}
mkdir -p "$out"
tapsim() { node --max-semi-space-size=32 bin/tapsim.js "$@"; }
set -x
tapsim run --vms 3 --latency latency_configs/delays_3x3.txt --duration 20s --no-ssh --no-progress \
  --boot-cmd 'sleep 1; for ip in 10.0.0.1 10.0.0.2 10.0.0.3; do ping -c 3 $ip; done' --trace "$out/vm3.trace"
tapsim info "$out/vm3.trace"
tapsim replay "$out/vm3.trace"
tapsim run --latency latency_configs/delays_9x9_aws.txt --messages 20 --seed 1 --trace "$out/aws9.trace"
tapsim info "$out/aws9.trace"
tapsim replay "$out/aws9.trace"
tapsim run --latency latency_configs/wan_aws_9.yaml --messages 20 --seed 1 --trace "$out/aws9-jitter-s1.trace" --json > /dev/null
tapsim run --latency latency_configs/wan_aws_9.yaml --messages 20 --seed 2 --trace "$out/aws9-jitter-s2.trace" --json > /dev/null
tapsim diff "$out/aws9-jitter-s1.trace" "$out/aws9-jitter-s2.trace" || true
