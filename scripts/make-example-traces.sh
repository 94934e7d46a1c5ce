#!/usr/bin/env bash
# Regenerates the example traces in traces/ (small, checked in; tests replay every one).
set -euo pipefail
cd "$(dirname "$0")/.."
t() { node --max-semi-space-size=32 bin/tapsim.js "$@"; }
t run --latency latency_configs/delays_3x3.txt --messages 5 --seed 1 --trace traces/bracha_3x3.trace --no-progress
t run --latency latency_configs/delays_9x9_aws.txt --messages 3 --seed 1 --trace traces/bracha_aws9.trace --no-progress
t run --latency latency_configs/wan_aws_9.yaml --messages 3 --seed 1 --trace traces/bracha_aws9_jitter_seed1.trace --no-progress
t run --latency latency_configs/wan_aws_9.yaml --messages 3 --seed 2 --trace traces/bracha_aws9_jitter_seed2.trace --no-progress
t run --latency latency_configs/delays_9x9_aws.txt --messages 3 --silent 4,7 --seed 1 --trace traces/bracha_aws9_2silent.trace --no-progress
