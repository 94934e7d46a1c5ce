#!/usr/bin/env bash
# The test command: bootstrap (install + type-checked build), then every uvu test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
node test/run.mjs "$@"
