#!/usr/bin/env bash
# The demo: bootstrap, then Bracha reliable broadcast on the reference's 9-node AWS latency
# matrix, recorded to a trace; then summarise, replay (bit-for-bit check) and diff it
# against a run with another seed over a jittery topology.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
out=${TAPSIM_DEMO_DIR:-demo-out}
mkdir -p "$out"
tapsim() { node --max-semi-space-size=32 bin/tapsim.js "$@"; }
set -x
tapsim run --latency latency_configs/delays_9x9_aws.txt --messages 20 --seed 1 --trace "$out/aws9.trace"
tapsim info "$out/aws9.trace"
tapsim replay "$out/aws9.trace"
tapsim run --latency latency_configs/wan_aws_9.yaml --messages 20 --seed 1 --trace "$out/aws9-jitter-s1.trace" --json > /dev/null
tapsim run --latency latency_configs/wan_aws_9.yaml --messages 20 --seed 2 --trace "$out/aws9-jitter-s2.trace" --json > /dev/null
tapsim diff "$out/aws9-jitter-s1.trace" "$out/aws9-jitter-s2.trace" || true
