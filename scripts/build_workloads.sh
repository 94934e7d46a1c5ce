#!/usr/bin/env bash
# Builds the guest programs under workloads/ (one Go module each, standard library only)
# into .tapsim/workloads/<name>: static (CGO_ENABLED=0), stripped, with no paths or VCS
# stamps in them, so the same sources and Go version give the same bytes (the trace header
# records added files by sha256, and `tapsim rerun` compares them). A program is rebuilt only
# when the sha256 of its sources, this script and `go version` changed. No network: a
# stdlib-only module needs no download (GOPROXY=off makes sure).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=.tapsim/workloads
if ! command -v go >/dev/null; then
  echo "bootstrap: no Go toolchain (go): guest workloads in workloads/ not built; VM scenarios that add them will fail" >&2
  exit 0
fi
mkdir -p "$out_dir"
for mod in workloads/*/go.mod; do
  dir=$(dirname "$mod")
  name=$(basename "$dir")
  want=$( (go version; sha256sum "$0"; cd "$dir" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) ! -name '*_test.go' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
  stamp="$out_dir/$name.sha256"
  if [ -f "$out_dir/$name" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then continue; fi
  echo "bootstrap: building guest workload $out_dir/$name" >&2
  (cd "$dir" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-mod=mod GOPROXY=off \
    go build -trimpath -ldflags='-s -buildid=' -buildvcs=false -o "$OLDPWD/$out_dir/$name.tmp" .)
  mv "$out_dir/$name.tmp" "$out_dir/$name"
  echo "$want" > "$stamp"
done
