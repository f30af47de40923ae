#!/bin/bash
# The real-SCSI test tier: boots a Debian kernel under QEMU on the host's own root filesystem
# (9p, read-only, tmpfs overlay), sets up a LIO iSCSI target with three initiator "nodes" inside
# the guest (bed/target.sh), runs the scsi tier there, tears everything down, and exits with the
# tier's status. The last line is the tier summary `scsi: N passed, N failed`.
#
#   sudo bash test/scsi/run.sh               # the tier (npm run test:scsi, .ci/run)
#   sudo bash test/scsi/run.sh CMD [ARG...]  # run CMD in the guest instead (repo root, bed env)
#
# Needs root (QEMU must read the whole host tree for the guest) and the Debian packages
# qemu-system-x86 linux-image-amd64 busybox-static kmod cpio gzip xz-utils zstd sg3-utils
# open-iscsi iproute2 util-linux.
# Settings (env): HARNESS_SCSI_KVER (kernel; default newest installed with LIO),
#   HARNESS_SCSI_ACCEL=auto|kvm|tcg, HARNESS_SCSI_SMP=2 (guest vCPUs: the daemon tests run three
#   daemons at once; under TCG 2 vCPUs took the tier from ~10 to ~6 min), HARNESS_SCSI_MEM_MB=1024,
#   HARNESS_SCSI_TIMEOUT=2400 (seconds for the whole guest run: the tests bound themselves, scaled to the machine; this only catches a guest that hangs), HARNESS_SCSI_KEEP=1 (keep the
#   work dir), HARNESS_SCSI_NETNS=1|0, HARNESS_SCSI_DISK_MB=32, HARNESS_SCSI_TIME_SCALE (factor
#   for the tests' timers; default 4 under TCG, 1 under KVM), HARNESS_SCSI_RACE_ROUNDS=50;
#   HARNESS_SCSI_CPU_PERCENT (limit QEMU to this % of one host core: a slower machine on demand),
#   any HARNESS_SCSI_* is passed on to the guest.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
say() { echo "[scsi-bed] $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
tier_mode=1; [ $# -gt 0 ] && tier_mode=0
# When the bed itself cannot run, the tier still ends with its summary line, as a failure.
summary="scsi: 0 passed, 1 failed"   # replaced by the tier's own line once it ran
rc=
bed_failed() {
  say "$*"
  rc=1
  # Before the cleanup trap is set, nobody else prints the summary.
  [ "$tier_mode" = 1 ] && [ -z "${work:-}" ] && echo "$summary"
  exit 1
}

[ "$(id -u)" = 0 ] || bed_failed "must run as root (QEMU shares the host's root filesystem with the guest)"
for tool in qemu-system-x86_64 modprobe cpio gzip xz zstd sg_persist sg_vpd iscsiadm iscsid losetup ip; do
  command -v "$tool" >/dev/null || bed_failed "missing $tool (apt-get install qemu-system-x86 linux-image-amd64 busybox-static kmod cpio gzip xz-utils zstd sg3-utils open-iscsi iproute2 util-linux)"
done
[ -x "$repo/node_modules/.bin/node" ] || bed_failed "missing $repo/node_modules/.bin/node (run npm ci)"

kver=${HARNESS_SCSI_KVER:-}
if [ -z "$kver" ]; then
  for k in $(ls -1 /lib/modules | sort -rV); do
    if [ -r "/boot/vmlinuz-$k" ] && modinfo -k "$k" -n iscsi_target_mod >/dev/null 2>&1; then kver=$k; break; fi
  done
fi
[ -n "$kver" ] && [ -r "/boot/vmlinuz-$kver" ] || bed_failed "no kernel with LIO (iscsi_target_mod) in /boot (apt-get install linux-image-amd64)"

accel=${HARNESS_SCSI_ACCEL:-auto}
if [ "$accel" = auto ]; then
  # /dev/kvm is not enough: a host without VT-x/AMD-V (e.g. a PVM hypervisor) exposes it, and a
  # stock kernel then hangs during early boot. Use KVM only with real hardware virtualisation.
  accel=tcg
  [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && accel=kvm
fi
case $accel in
  kvm) accel_args=(-accel kvm -cpu host) ;;
  tcg) accel_args=(-accel tcg,thread=multi,tb-size=128 -cpu qemu64) ;;   # qemu64: cheapest to emulate
  *) bed_failed "HARNESS_SCSI_ACCEL must be auto, kvm or tcg (got '$accel')" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/harness-scsi.XXXXXX")
share=$work/share
mkdir -p "$share"
cleanup() {
  local pid
  pid=$(cat "$work/qemu.pid" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "stopping QEMU (pid $pid)"
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$work/vmlinux" "$work/initramfs.cpio.gz"
  [ -n "${cg:-}" ] && rmdir "$cg" 2>/dev/null
  if [ "${HARNESS_SCSI_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    say "logs kept in $share (setup.log test.log dmesg.log serial.log)"
  else
    rm -rf "$work"
  fi
  # The summary must stay the very last line of the tier's output.
  [ "$tier_mode" = 1 ] && echo "$summary"
}
trap cleanup EXIT
trap 'rc=130; exit 130' INT TERM

t0=$(now)
bash "$here/bed/build-initramfs.sh" "$kver" "$work/initramfs.cpio.gz" || bed_failed "building the initramfs failed"
kernel=/boot/vmlinuz-$kver
bash "$here/bed/extract-vmlinux.sh" "$kernel" "$work/vmlinux" && kernel=$work/vmlinux
t_built=$(now)

# What the guest runs, and its settings: the result share carries both.
{
  printf 'export HARNESS_SCSI_REPO=%q\n' "$repo"
  # Under TCG a process start costs ~100x more than on hardware: tests stretch their timers.
  printf 'export HARNESS_SCSI_TIME_SCALE=%q\n' "${HARNESS_SCSI_TIME_SCALE:-$([ "$accel" = kvm ] && echo 1 || echo 4)}"
  env | grep -E '^HARNESS_SCSI_[A-Z0-9_]+=' | grep -vE '^HARNESS_SCSI_(REPO|TIME_SCALE|KVER|ACCEL|SMP|MEM_MB|TIMEOUT|KEEP)=' |
    while IFS='=' read -r k v; do printf 'export %s=%q\n' "$k" "$v"; done
} > "$share/guest.env"
if [ "$tier_mode" = 1 ]; then
  echo 'node test/run-tier.ts scsi test/scsi/tests' > "$share/cmd"
else
  printf '%q ' "$@" > "$share/cmd"; echo >> "$share/cmd"
fi

say "kernel $kver ($(basename "$kernel")), accel $accel, smp ${HARNESS_SCSI_SMP:-2}, ${HARNESS_SCSI_MEM_MB:-1024} MiB; built in $(secs "$t0" "$t_built") s; work dir $work"
# A slower machine on demand: QEMU (all its vCPUs together) gets at most this percentage of one
# host core, through the cgroup cpu controller (v2 cpu.max or v1 CFS quota).
throttle=()
if [ -n "${HARNESS_SCSI_CPU_PERCENT:-}" ]; then
  cg=
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    cg=/sys/fs/cgroup/harness-scsi.$$
    mkdir "$cg" && echo "$((HARNESS_SCSI_CPU_PERCENT * 1000)) 100000" > "$cg/cpu.max" || bed_failed "cannot limit the CPU with $cg/cpu.max"
  elif [ -d /sys/fs/cgroup/cpu ]; then
    cg=/sys/fs/cgroup/cpu/harness-scsi.$$
    mkdir "$cg" && echo 100000 > "$cg/cpu.cfs_period_us" && echo "$((HARNESS_SCSI_CPU_PERCENT * 1000))" > "$cg/cpu.cfs_quota_us" || bed_failed "cannot limit the CPU in $cg"
  else
    bed_failed "HARNESS_SCSI_CPU_PERCENT needs the cgroup cpu controller"
  fi
  # The cgroup's only member is the shell that then execs QEMU (killed with QEMU, removed below).
  throttle=(sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' throttle "$cg")
  say "QEMU limited to ${HARNESS_SCSI_CPU_PERCENT}% of one host core ($cg)"
fi
t_qemu=$(now)
timeout -k 10 "${HARNESS_SCSI_TIMEOUT:-2400}" \
  "${throttle[@]}" qemu-system-x86_64 -M pc "${accel_args[@]}" -smp "${HARNESS_SCSI_SMP:-2}" -m "${HARNESS_SCSI_MEM_MB:-1024}" \
    -nodefaults -no-user-config -display none -serial stdio -no-reboot -pidfile "$work/qemu.pid" \
    -kernel "$kernel" -initrd "$work/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 mitigations=off tsc=reliable hs.stage2=$here/bed/guest.sh" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$share,mount_tag=hsout,security_model=none,multidevs=remap" \
    < /dev/null 2>&1 |
  while IFS= read -r line; do
    line=${line%$'\r'}
    printf '%s\n' "$line" >> "$work/serial.log"
    case $line in
      HARNESS-SCSI-MARK\ ready*) t_ready=$(now); say "guest userspace up $(secs "$t_qemu" "$t_ready") s after QEMU start" ;;
      HARNESS-SCSI-MARK\ setup*) say "LIO target + iSCSI sessions ready $(secs "$t_ready" "$(now)") s later" ;;
      HARNESS-SCSI-MARK\ calibrated*) say "${line#HARNESS-SCSI-MARK }" ;;
      HARNESS-SCSI-MARK\ done*) ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
qemu_rc=${PIPESTATUS[0]}
t_end=$(now)
[ -n "${cg:-}" ] && rmdir "$cg" 2>/dev/null
mv "$work/serial.log" "$share/serial.log" 2>/dev/null

rc=$(cat "$share/rc" 2>/dev/null)
[ -n "$rc" ] || { rc=125; say "the guest left no exit status (QEMU exit $qemu_rc; 124 = timed out)"; }
say "QEMU ran $(secs "$t_qemu" "$t_end") s; whole run $(secs "$t0" "$t_end") s; guest status $rc"
if [ "$tier_mode" = 1 ]; then
  line=$(grep -E '^scsi: [0-9]+ passed, [0-9]+ failed$' "$share/test.log" 2>/dev/null | tail -n 1)
  if [ -n "$line" ]; then summary=$line; elif [ "$rc" = 0 ]; then rc=1; fi
fi
exit "$rc"
