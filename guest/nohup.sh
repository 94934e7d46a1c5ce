#!/bin/sh
# nohup for the default guest: Debian's busybox-static has no nohup applet. POSIX
# behaviour: SIGHUP ignored (the ignore survives exec), output that would go to a
# terminal goes to nohup.out (or $HOME/nohup.out) instead, stderr follows stdout.
if [ $# -eq 0 ]; then
  echo "usage: nohup COMMAND [ARG]..." >&2
  exit 127
fi
trap '' HUP
if [ -t 1 ]; then
  out=nohup.out
  { : >>"$out"; } 2>/dev/null || out=${HOME:-/root}/nohup.out
  echo "nohup: appending output to '$out'" >&2
  exec >>"$out"
fi
[ -t 2 ] && exec 2>&1
[ -t 0 ] && exec </dev/null
exec "$@"
