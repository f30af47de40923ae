#!/bin/bash
# Guest stage 2: PID 1 on the overlay root (the host's filesystem). Sets up the SCSI target
# (target.sh), runs the command the host asked for with the bed's environment, leaves the exit
# status on the result share, and powers off. PID 1 must never return: the kernel would panic.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
SHARE=/mnt/harness-scsi
here=$(dirname "$(readlink -f "$0")")
uptime_s() { cut -d' ' -f1 /proc/uptime; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd
# A fresh /run: the host's (pid files, sockets, netns mounts) mean nothing in here.
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /run/netns
hostname harness-scsi
ip link set lo up
dmesg -n 1          # keep kernel chatter (e.g. "reservation conflict") off the console
echo "HARNESS-SCSI-MARK ready $(uptime_s)"

finish() {
  echo "$1" > "$SHARE/rc"
  dmesg > "$SHARE/dmesg.log" 2>&1
  echo "HARNESS-SCSI-MARK done $(uptime_s) rc=$1"
  sync
  poweroff -f
  sleep 5
  echo o > /proc/sysrq-trigger
  sleep 60
}

# guest.env (written by run.sh): HARNESS_SCSI_REPO and any HARNESS_SCSI_* settings.
. "$SHARE/guest.env" || finish 120
export PATH=$HARNESS_SCSI_REPO/node_modules/.bin:$PATH
if ! bash "$here/target.sh" > "$SHARE/setup.log" 2>&1; then
  echo "HARNESS-SCSI: target setup failed; tail of setup.log:"
  tail -n 30 "$SHARE/setup.log"
  finish 121
fi
set -a; . /run/harness-scsi/env; set +a
export HARNESS_SCSI_SHARE=$SHARE   # tests may leave logs there (kept when the tier fails)
echo "HARNESS-SCSI-MARK setup $(uptime_s)"

cd "$HARNESS_SCSI_REPO" || finish 122
# Calibration: how long this guest takes for a fixed piece of work in node, one per vCPU at once
# (the daemon tests run three nodes on all vCPUs: a host that gives the guest less CPU than its
# vCPUs shows only in parallel). After one warm-up start (node's binary comes over 9p), median of 3.
# The tests scale their bounds by it (lib/bed.ts: SLOWNESS).
CAL_JS='let x = 0; for (let i = 0; i < 3e7; i++) x = (x + i * 7) % 1000003;'
node -e 0
node_work_ms() {
  local s i
  s=$(date +%s%N)
  for i in $(seq "$(nproc)"); do node -e "$CAL_JS" & done
  wait
  echo $((($(date +%s%N) - s) / 1000000))
}
export HARNESS_SCSI_WORK_UNIT_MS=$(for _ in 1 2 3; do node_work_ms; done | sort -n | sed -n 2p)
echo "HARNESS-SCSI-MARK calibrated: node work unit ${HARNESS_SCSI_WORK_UNIT_MS} ms"
bash "$SHARE/cmd" 2>&1 | tee "$SHARE/test.log"
finish "${PIPESTATUS[0]}"
