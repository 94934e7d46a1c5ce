#!/usr/bin/env bash
# Idempotent setup for a fresh clone: npm dependencies (only when package-lock.json
# changed since the last install) and the TypeScript build. Later issues add the
# tapio-rs napi build, the slice-gate plugin, the guest workloads and the guest image below.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
stamp=node_modules/.tapsim-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # `npm install` (it follows package-lock.json) rather than `npm ci`: npm 11 records no
  # entries for msgpackr's optional native packages of other platforms, and `npm ci`
  # then refuses the lock file as out of sync.
  echo "bootstrap: npm install (locked versions)" >&2
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
bash scripts/build_tapio.sh  # the tapio-rs napi addon (cargo), when its source changed
bash scripts/build_gate.sh  # the slice-gate QEMU plugin (gcc), when its source changed
bash scripts/build_workloads.sh  # guest programs (workloads/, Go), when their sources changed
echo "bootstrap: tsc build" >&2
# From scratch: a stale dist/ could hold compiled tests whose sources were removed.
rm -rf dist
npx tsc -p tsconfig.json
npx tsc -p tsconfig.viewer.json
node bin/tapsim.js image build >&2  # the default guest image; a cache hit unless its inputs changed
