#!/usr/bin/env bash
# Benchmarks: bootstrap (install + type-checked build), then the engine, trace, memory,
# slice-gate, TAP I/O and VM slowdown benchmarks (bench/README.md). Each prints a table with ratios against a baseline measured
# in the same run; nothing asserts wall-clock times.
#   scripts/bench.sh          full sizes (a few minutes)
#   scripts/bench.sh quick    small sizes, to check the benchmarks work
# BENCH_VERBOSE=1 also prints every repetition's figures on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
case "$mode" in
  full | quick) ;;
  *) echo "usage: scripts/bench.sh [quick]" >&2; exit 2 ;;
esac
bash scripts/bootstrap.sh
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
echo "bench: mode $mode; node $(node --version); $(nproc) cores${cpu:+ ($cpu)}; $(uname -sm)"
for bench in engine_bench trace_bench memory_bench gate_bench tapio_bench vm_slowdown; do
  echo
  node --max-semi-space-size=32 "dist/bench/$bench.js" "$mode"
done
