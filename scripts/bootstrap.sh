#!/usr/bin/env bash
# Idempotent setup for a fresh clone: npm dependencies (only when package-lock.json
# changed since the last install) and the TypeScript build. Later issues add the
# Debian packages (qemu), the tapio-rs napi build and the guest image here.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.tapsim-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
echo "bootstrap: tsc build" >&2
npx tsc -p tsconfig.json
