#!/usr/bin/env bash
# Builds the slice-gate QEMU plugin (qmp/gate/gate.c -> qmp/gate/build/tapsim-gate.so) when
# the source is newer than the shared object. gcc only; no QEMU headers are needed.
set -euo pipefail
cd "$(dirname "$0")/.."
src=qmp/gate/gate.c
out=qmp/gate/build/tapsim-gate.so
if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then exit 0; fi
echo "bootstrap: building $out" >&2
mkdir -p "$(dirname "$out")"
gcc -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
