#!/usr/bin/env bash
# Debian packages tapsim needs on the host, installed only when one is missing (so a
# second run costs one dpkg query). QEMU runs the VMs, qemu-img makes their overlays,
# cpio builds the guest initramfs, xz-utils unpacks its kernel, gcc + libc6-dev build the
# gate plugin and the guest's static seed-rng, tshark checks pcapng
# exports, chromium renders the viewer in tests, iproute2 manages TAP devices and
# namespaces, tmux drives the debugger's TTY test; slurmctld, slurmd, slurm-client and
# munge run the sweep test's single-node Slurm cluster (test/sweep_slurm.test.ts).
set -euo pipefail
pkgs=(qemu-system-x86 qemu-utils cpio xz-utils gcc libc6-dev tshark chromium iproute2 iputils-ping tmux slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bootstrap: apt-get install ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: need root to install Debian packages: ${missing[*]} (run as root or install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
