#!/usr/bin/env bash
# The demo: bootstrap (Debian packages, npm, the napi addon, the gate plugin, the default
# guest image), then the main job: the ping-mesh scenario, three QEMU VMs of the default
# guest on the reference's 3x3 latency matrix, each pinging the others while every slice
# and frame is recorded; its results, then a summary and a replay of its trace; the same VMs
# started from a snapshot. Then in-process Bracha on the
# 9-node AWS matrix: record, replay, and diff against another seed over a jittery topology.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=${TAPSIM_DEMO_DIR:-demo-out}
mkdir -p "$out"
tapsim() { node --max-semi-space-size=32 bin/tapsim.js "$@"; }
set -x
rm -rf "$out/ping_mesh"
tapsim run scenarios/ping_mesh.yaml --out "$out/ping_mesh" --no-progress
tapsim info "$out/ping_mesh/trace.tapsim"
tapsim replay "$out/ping_mesh/trace.tapsim"
# The same three VMs started from a snapshot of the default guest (built once, ~10 s, then
# cached): READY in about a second instead of a boot, RAM shared between the VMs.
tapsim run --vms 3 --snapshot --no-ssh --no-progress --duration 4s --trace "$out/vm3-snapshot.trace" \
  --boot-cmd 'sleep 1; for ip in 10.0.0.1 10.0.0.2 10.0.0.3; do ping -c 3 -i 0.2 $ip; done'
tapsim replay "$out/vm3-snapshot.trace"
tapsim run --latency latency_configs/delays_9x9_aws.txt --messages 20 --seed 1 --trace "$out/aws9.trace"
tapsim info "$out/aws9.trace"
tapsim replay "$out/aws9.trace"
tapsim run --latency latency_configs/wan_aws_9.yaml --messages 20 --seed 1 --trace "$out/aws9-jitter-s1.trace" --json > /dev/null
tapsim run --latency latency_configs/wan_aws_9.yaml --messages 20 --seed 2 --trace "$out/aws9-jitter-s2.trace" --json > /dev/null
tapsim diff "$out/aws9-jitter-s1.trace" "$out/aws9-jitter-s2.trace" || true
