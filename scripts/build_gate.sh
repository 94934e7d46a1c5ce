#!/usr/bin/env bash
# Builds the slice-gate QEMU plugin (qmp/gate/gate.c -> qmp/gate/build/tapsim-gate.so) when
# the source is newer than the shared object. gcc only; no QEMU headers are needed.
# Also builds tapsim-gate-fault.so, a deliberately broken gate (every deadline from slice 300
# on is armed 143 ns late) that the tests use to show the engine's per-slice check catches it,
# and tapsim-gate-no-in-place.so (every slice through QEMU's timers, none ended in place) that
# bench/gate_bench.ts compares against, and tapsim-gate-loud-monitor.so (the QMP monitor's I/O
# thread woken by every virtual-timer event, as QEMU does) that bench/vm_parallel.ts compares against.
set -euo pipefail
cd "$(dirname "$0")/.."
src=qmp/gate/gate.c
out=qmp/gate/build/tapsim-gate.so
fault=qmp/gate/build/tapsim-gate-fault.so
no_in_place=qmp/gate/build/tapsim-gate-no-in-place.so
loud_monitor=qmp/gate/build/tapsim-gate-loud-monitor.so
fresh() { [ -f "$1" ] && [ "$1" -nt "$src" ] && [ "$1" -nt "$0" ]; }
if fresh "$out" && fresh "$fault" && fresh "$no_in_place" && fresh "$loud_monitor"; then exit 0; fi
echo "bootstrap: building $out" >&2
mkdir -p "$(dirname "$out")"
cc() { gcc -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden "$@"; }
cc -o "$out.tmp" "$src"
cc -DTAPSIM_GATE_FAULT_NS=143 -DTAPSIM_GATE_FAULT_AFTER=50 -o "$fault.tmp" "$src"
cc -DTAPSIM_GATE_NO_IN_PLACE -o "$no_in_place.tmp" "$src"
cc -DTAPSIM_GATE_LOUD_MONITOR -o "$loud_monitor.tmp" "$src"
mv "$out.tmp" "$out"
mv "$fault.tmp" "$fault"
mv "$no_in_place.tmp" "$no_in_place"
mv "$loud_monitor.tmp" "$loud_monitor"
