#!/bin/sh
# PID 1 of one test node (see bench/lib/cluster.ts). Started inside the node's network namespace
# by `unshare --pid --fork --mount --uts --mount-proc --propagation private`, so it owns fresh
# pid, mount and uts namespaces. It makes the node look like a freshly booted host: its own
# hostname, an empty /run (HA_RSCTMP must be empty at boot) and /dev/shm, private state
# directories bind-mounted over shared paths, then reaps orphans forever. A PID 1 that does
# not reap leaves every daemon's orphaned children as zombies.
#
# usage: node-init.sh <hostname> <ready-file> [<private-dir> <mountpoint>]...
set -eu
name=$1
ready=$2
shift 2

hostname "$name"
mount -t tmpfs -o mode=0755,size=64m tmpfs /run
mkdir -p /run/resource-agents /run/lock /run/harness
mount -t tmpfs -o mode=1777,size=64m tmpfs /dev/shm
while [ $# -ge 2 ]; do
  mkdir -p "$1" "$2"
  mount --bind "$1" "$2"
  shift 2
done
# IPv6 is not used by the test bed; switching it off removes router/neighbour solicitation noise.
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || true
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null || true
ip link set lo up
echo "$name" > "$ready"

set +e
# dash's `wait` collects any child (wait3 on -1), including orphans re-parented to us, so
# this loop is a complete reaper. PID 1 of a namespace ignores signals it has no handler
# for, so only SIGKILL from outside (power-off) ends it.
while :; do
  sleep 3600 &
  wait
done
