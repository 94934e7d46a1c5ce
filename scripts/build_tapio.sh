#!/usr/bin/env bash
# Builds the tapio-rs napi addon (tapio-rs/build/tapio.node) with @napi-rs/cli when any of
# its sources is newer than the built file. cargo fetches crates from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tapio-rs/build/tapio.node
if [ -f "$out" ] && [ -z "$(find tapio-rs/src tapio-rs/Cargo.toml tapio-rs/Cargo.lock tapio-rs/build.rs "$0" -newer "$out" 2>/dev/null)" ]; then exit 0; fi
echo "bootstrap: building $out (cargo, release)" >&2
npx --no-install napi build --release --manifest-path tapio-rs/Cargo.toml --package-json-path tapio-rs/package.json \
  --output-dir tapio-rs/build --no-js --dts index.d.ts >&2
touch "$out"
