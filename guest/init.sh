#!/bin/sh
# /init of the tapsim default guest (busybox sh, PID 1). Mounts the pseudo file systems,
# loads the virtio NIC modules, configures eth0 (management, gate-fed, SSH) and eth1
# (the simulated NIC) from the kernel command line, starts dropbear, prints the ready
# line on the console, then becomes busybox init (which reaps orphans and offers a
# shell on the console). Nothing here reads randomness or the wall clock: for a given
# virtual clock the boot is the same every time.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 022
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
exec </dev/console >/dev/console 2>&1
# Virtual time as seconds (vclock: the TSC, which is the virtual clock under -icount).
vtime() {
  ns=$(vclock)
  printf '%d.%09ds' $((ns / 1000000000)) $((ns % 1000000000))
}
# First line on the console from userspace: `tapsim run` shows it as the "init" boot stage.
echo "tapsim-guest: init t=$(vtime)"

fail() {
  echo "tapsim-guest: FAILED: $*"
  poweroff -f
}

# init gets no dotted parameters in its environment: read them from the command line (or
# from a snapshot clone's identity, in the same form). set -f: a word with a glob character
# must not expand against the root directory.
read_params() {
  set -f
  for word in $(cat "$1"); do
    case "$word" in
      sim.id=*) SIM_ID=${word#*=} ;;
      sim.seed=*) SIM_SEED=${word#*=} ;;
      sim.cmd=*) SIM_CMD=${word#*=} ;;
      sim.ip=*) SIM_IP=${word#*=} ;;
      sim.hostname=*) SIM_HOSTNAME=${word#*=} ;;
      sim.mgmt=*) SIM_MGMT=${word#*=} ;;
      sim.rtc_base=*) SIM_RTC_BASE=${word#*=} ;;
      sim.template=*) SIM_TEMPLATE=${word#*=} ;;
      sim.mac=*) SIM_MAC=${word#*=} ;;
      sim.mgmt_mac=*) SIM_MGMT_MAC=${word#*=} ;;
    esac
  done
  set +f
}
SIM_ID=none SIM_IP= SIM_HOSTNAME=tapsim SIM_SEED=1 SIM_CMD= SIM_RTC_BASE= SIM_TEMPLATE= SIM_MAC= SIM_MGMT_MAC=
read_params /proc/cmdline

# Runs CMD... until it succeeds, at most TRIES more times USEC apart; its last status.
wait_for() {
  tries=$1 usec=$2
  shift 2
  n=0
  while ! "$@" && [ $n -lt $tries ]; do
    usleep $usec
    n=$((n + 1))
  done
  "$@"
}

# Load order matters (each module needs the ones before it); the list is written by
# the image builder (guest/build.ts, GUEST_MODULES).
load_modules() {
  kdir=/lib/modules/$(uname -r)
  while read -r mod; do
    [ -n "$mod" ] || continue
    insmod "$kdir/$mod" || fail "insmod $mod"
  done </etc/tapsim/modules
  # Both NICs are probed while virtio_net loads; the bounded wait covers a late probe.
  wait_for 50 100000 [ -e /sys/class/net/eth1 ] || fail "no eth1 (need two virtio-net NICs: eth0 management, eth1 simulated)"
}

# The host key is built into the image (every VM of an image shares it), so boot does
# no key generation. dropbear forks before it binds: wait until :22 (0x0016) listens.
# Keys only (-s: root's authorized_keys comes in the run's extra archive), unless the
# run asked for password login (tapsim run --password), which puts the flag file there.
start_dropbear() {
  no_passwords=-s
  [ -e /etc/tapsim/ssh-password-login ] && no_passwords=
  dropbear $no_passwords -r /etc/dropbear/dropbear_ed25519_host_key -p 22 -P /run/dropbear.pid || fail "dropbear"
  wait_for 100 50000 grep -q '^ *[0-9]*: 00000000:0016 00000000:0000 0A' /proc/net/tcp || fail "dropbear is not listening on port 22"
}

# The guest agent (guest/agent.c): scenario commands and file collection, driven by UDP
# datagrams the host injects on eth0 through the slice gate; it reports on the console.
# Waited for (port 5999 = 0x176F bound) so that a command sent after the ready line is
# never lost.
start_agent() {
  tapsim-agent </dev/null >/dev/console 2>&1 &
  wait_for 1000 1000 grep -q '^ *[0-9]*: [0-9A-F]*:176F ' /proc/net/udp || fail "tapsim-agent is not listening on port 5999"
}

# A snapshot template (qmp/snapshot.ts) boots this far once per image and parks: the host
# saves it here, and every clone resumes inside `tapsim-agent --identity`, which returns
# with the node's settings and extra archive, injected through the gate after the restore,
# and stays on as the node's agent. The NICs then take the node's MACs (the template's are
# the same in every clone). dropbear starts before the park (the costliest start under TCG:
# a dynamically linked program): it draws no randomness until a connection comes, and then
# reseeds from the kernel, which by then holds the node's seed (dropbear >= 2020.79).
reseed=
if [ "$SIM_TEMPLATE" = 1 ]; then
  load_modules
  ip addr add 10.255.0.15/24 dev eth0 || fail "eth0 template address"
  ip link set eth0 up || fail "eth0 up"
  mkdir -p /run/tapsim
  start_dropbear
  echo "tapsim-guest: parked t=$(vtime)"
  tapsim-agent --identity /run/tapsim </dev/null >/dev/console 2>&1 || fail "no identity from the host"
  read_params /run/tapsim/cmdline
  ip link set eth0 down
  ip addr flush dev eth0
  ip link set eth0 address "$SIM_MGMT_MAC" || fail "eth0 address $SIM_MGMT_MAC"
  ip link set eth1 address "$SIM_MAC" || fail "eth1 address $SIM_MAC"
  if [ -s /run/tapsim/extra.cpio.gz ]; then
    (cd / && gzip -dc /run/tapsim/extra.cpio.gz | cpio -idmu 2>/dev/null) || fail "extra archive"
  fi
  rm -f /run/tapsim/extra.cpio.gz
  reseed=reseed
  echo "tapsim-guest: identity node=$SIM_ID t=$(vtime)"
fi

# The kernel set the clock from the CMOS RTC, whole seconds only: it runs behind the run's
# clock (RTC base + virtual time) by the fraction of a second at which it read the RTC.
# vclock sets it from the virtual clock (the TSC under -icount), to the nanosecond.
if [ -n "$SIM_RTC_BASE" ]; then
  vclock -s "$SIM_RTC_BASE" || fail "vclock -s $SIM_RTC_BASE"
fi

# The RNG gets a seed from the run seed and node id: nothing (dropbear first of all) waits
# minutes of TCG time for timer-jitter entropy, and the same run draws the same numbers.
case "$SIM_ID" in ''|*[!0-9]*) rng_id=0 ;; *) rng_id=$SIM_ID ;; esac
seed-rng $((SIM_SEED * 4096 + rng_id)) $reseed || fail "seed-rng"

[ "$SIM_TEMPLATE" = 1 ] || load_modules

hostname "$SIM_HOSTNAME"
echo "$SIM_HOSTNAME" >/etc/hostname
ip link set lo up
# eth0: the management NIC at the lower PCI address, fed only by the slice gate; the host
# reaches it through a TAP device of its own (sim.mgmt: this end's address).
ip addr add "${SIM_MGMT:-10.255.0.15/24}" dev eth0 || fail "eth0 address"
ip link set eth0 up || fail "eth0 up"
ip link set eth1 up || fail "eth1 up"
if [ -n "$SIM_IP" ]; then
  ip addr add "$SIM_IP" dev eth1 || fail "eth1 address $SIM_IP"
  echo "${SIM_IP%/*} $SIM_HOSTNAME" >>/etc/hosts
fi

if [ "$SIM_TEMPLATE" != 1 ]; then
  start_dropbear
elif [ -e /etc/tapsim/ssh-password-login ]; then
  kill "$(cat /run/dropbear.pid)" && rm -f /run/dropbear.pid
  start_dropbear
fi

[ "$SIM_TEMPLATE" = 1 ] || start_agent

echo "tapsim-guest: ready node=$SIM_ID ip=${SIM_IP%/*} hostname=$SIM_HOSTNAME t=$(vtime)"
# sim.cmd: a base64 shell script run once at boot (tapsim run --boot-cmd). Unlike commands
# over SSH it starts at the same virtual instant every run, so the run is reproducible.
if [ -n "$SIM_CMD" ]; then
  echo "$SIM_CMD" | base64 -d >/run/boot-cmd.sh || fail "sim.cmd is not base64"
  (sh /run/boot-cmd.sh 2>&1 | tee /tmp/boot-cmd.log) &
fi
exec /sbin/init
