#!/bin/bash
# In the guest: the shared storage of the test cluster.
#  - two LIO fileio LUNs ("disk0", "disk1"; two hierarchies need two disks) exported by one LIO
#    iSCSI target on 127.0.0.1:3260;
#  - one open-iscsi session per initiator port: node1 gets two (multipath: two I_T nexuses of the
#    same initiator name), node2 and node3 one each. Every session sees both LUNs, so every
#    (node, path, disk) is its own /dev/sdX and each node is its own PR initiator;
#  - optional network namespaces hs-node1..3 on a bridge, for daemon-level tests: the iSCSI
#    sessions stay in the root namespace, so cutting a node's network leaves its storage path up;
#  - two devices that are not SCSI-PR capable, for the bad-input tests.
# Writes the result as shell assignments to /run/harness-scsi/env (read by guest.sh and tests).
# iSCSI, not tcm_loop: PREEMPT AND ABORT received through tcm_loop deadlocks the guest kernel.
set -euo pipefail
NODES=3
SIZE_MB=${HARNESS_SCSI_DISK_MB:-32}
TARGET=iqn.2024-06.dev.harness.test:shared
PORTAL=127.0.0.1:3260
CFG=/sys/kernel/config/target
ENV=/run/harness-scsi/env
mkdir -p /run/harness-scsi
: > "$ENV"
say() { echo "[target] $*"; }
put() { printf '%s=%q\n' "$1" "$2" >> "$ENV"; }

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 50 ms; fail naming DESCRIPTION after SECONDS.
wait_for() {
  local limit=$1 what=$2 i; shift 2
  for ((i = 0; i < limit * 20; i++)); do "$@" && return 0; sleep 0.05; done
  echo "[target] timed out after ${limit}s waiting for $what" >&2; return 1
}

# LIO rewrites its PR metadata file under <dbroot>/pr on every registration change (even without
# APTPL). When the directory is missing, REGISTER registers the key and still answers NOT READY.
mkdir -p /etc/target/pr /var/target/pr
modprobe configfs
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
modprobe target_core_mod
modprobe target_core_file
modprobe iscsi_target_mod
modprobe sd_mod
modprobe sg

mkdir -p /run/harness-scsi/luns
for d in 0 1; do
  img=/run/harness-scsi/luns/disk$d.img
  truncate -s "${SIZE_MB}M" "$img"
  bs=$CFG/core/fileio_$d/disk$d
  mkdir -p "$bs"
  echo "fd_dev_name=$img,fd_dev_size=$((SIZE_MB * 1024 * 1024))" > "$bs/control"
  # The unit serial seeds the NAA designator (VPD 0x83): fixed serial => stable, distinct WWNs.
  echo "harness-scsi-disk$d" > "$bs/wwn/vpd_unit_serial"
  echo 1 > "$bs/enable"
done

tpg=$CFG/iscsi/$TARGET/tpgt_1
mkdir -p "$tpg"
for d in 0 1; do
  mkdir -p "$tpg/lun/lun_$d"
  ln -s "$CFG/core/fileio_$d/disk$d" "$tpg/lun/lun_$d/disk$d"
done
mkdir -p "$tpg/np/$PORTAL"
# Demo mode: any initiator may log in and gets every LUN read-write, no CHAP; a test bed only.
echo 0 > "$tpg/attrib/authentication"
echo 1 > "$tpg/attrib/generate_node_acls"
echo 1 > "$tpg/attrib/cache_dynamic_acls"
echo 0 > "$tpg/attrib/demo_mode_write_protect"
echo 1 > "$tpg/enable"
say "LIO target $TARGET on $PORTAL: 2 LUNs of ${SIZE_MB} MiB"

# ---- initiator side: open-iscsi, one iface record (own initiator port) per path -------------
modprobe iscsi_tcp
rm -rf /etc/iscsi /var/lib/iscsi /run/lock/iscsi
mkdir -p /etc/iscsi /run/lock/iscsi
echo "InitiatorName=iqn.2024-06.dev.harness.test:unused" > /etc/iscsi/initiatorname.iscsi
# Short recovery timeouts: a test that drops a session should not wait the default 120 s.
cat > /etc/iscsi/iscsid.conf <<'CONF'
node.startup = manual
node.session.timeo.replacement_timeout = 5
node.conn[0].timeo.login_timeout = 10
node.conn[0].timeo.logout_timeout = 10
node.conn[0].timeo.noop_out_interval = 0
node.conn[0].timeo.noop_out_timeout = 0
node.session.initial_login_retry_max = 2
node.session.scan = auto
CONF
iscsid
iscsid_up() { local rc=0; iscsiadm -m session >/dev/null 2>&1 || rc=$?; [ "$rc" -ne 20 ]; }  # 20 = cannot connect to iscsid
wait_for 20 "iscsid" iscsid_up

# path table: iface name, node, initiator name. node1 has two paths under one initiator name
# (two sessions => two ISIDs => two I_T nexuses), like a host with two NICs.
PATHS=(
  "hs-n1p1 1 iqn.2024-06.dev.harness.test:node1"
  "hs-n2p1 2 iqn.2024-06.dev.harness.test:node2"
  "hs-n3p1 3 iqn.2024-06.dev.harness.test:node3"
  "hs-n1p2 1 iqn.2024-06.dev.harness.test:node1"
)
iface_args=()
for p in "${PATHS[@]}"; do
  read -r iface _ iqn <<< "$p"
  iscsiadm -m iface -I "$iface" -o new >/dev/null
  iscsiadm -m iface -I "$iface" -o update -n iface.initiatorname -v "$iqn" >/dev/null
  iface_args+=(-I "$iface")
done
iscsiadm -m discovery -t sendtargets -p "$PORTAL" "${iface_args[@]}" >/dev/null

# lun_dev SESSION_DEVDIR LUN -> "sdX sgY" once the disk is probed (sd probing is asynchronous).
lun_ready() {
  local h=$1 lun=$2 d
  d=$(ls -d "$h"/target*/*:*:*:"$lun" 2>/dev/null | head -1) || return 1
  [ -n "$d" ] || return 1
  local blk sg
  blk=$(ls "$d/block" 2>/dev/null | head -1)
  sg=$(ls "$d/scsi_generic" 2>/dev/null | head -1)
  [ -n "$blk" ] && [ -n "$sg" ] && [ -b "/dev/$blk" ] && [ -c "/dev/$sg" ] || return 1
  echo "$blk $sg"
}
# All sessions log in at once (iscsiadm does them in parallel): the /dev/sdX names then come
# out in any order, which does not matter because each one is mapped through sysfs below.
iscsiadm -m node -T "$TARGET" -p "$PORTAL" --login >/dev/null
declare -A DEVS0 DEVS1
for p in "${PATHS[@]}"; do
  read -r iface node iqn <<< "$p"
  sess=
  find_session() {
    local s
    for s in /sys/class/iscsi_session/session*; do
      [ "$(cat "$s/ifacename" 2>/dev/null)" = "$iface" ] && { sess=$s; return 0; }
    done
    return 1
  }
  wait_for 20 "iSCSI session of $iface" find_session
  hostdir=$(readlink -f "$sess/device")
  for lun in 0 1; do
    wait_for 30 "LUN $lun of $iface" lun_ready "$hostdir" "$lun" >/dev/null
    read -r blk sg <<< "$(lun_ready "$hostdir" "$lun")"
    if [ "$lun" = 0 ]; then DEVS0[$node]+="${DEVS0[$node]:+ }/dev/$blk"; else DEVS1[$node]+="${DEVS1[$node]:+ }/dev/$blk"; fi
    say "node$node $iface ($iqn, $(basename "$sess")) lun $lun -> /dev/$blk /dev/$sg"
  done
done

put HARNESS_SCSI_NODES "$NODES"
put HARNESS_SCSI_TARGET "$TARGET"
for n in $(seq 1 "$NODES"); do
  put "HARNESS_SCSI_DEVS_N$n" "${DEVS0[$n]}"
  put "HARNESS_SCSI_DISK1_DEVS_N$n" "${DEVS1[$n]}"
done
wwid() { cat "/sys/block/$(basename "$1")/device/wwid"; }
put HARNESS_SCSI_WWN "$(wwid "${DEVS0[1]%% *}")"
put HARNESS_SCSI_DISK1_WWN "$(wwid "${DEVS1[1]%% *}")"

# ---- devices that are not SCSI-PR capable ----------------------------------------------------
modprobe loop
truncate -s 1M /run/harness-scsi/luns/plain.img
put HARNESS_SCSI_LOOP_DEV "$(losetup --find --show /run/harness-scsi/luns/plain.img)"
# scsi_debug: a real SCSI disk (sd, sg, VPD pages) that does not implement PERSISTENT RESERVE.
# Loaded after the iSCSI logins so it does not shift their /dev/sdX names.
modprobe scsi_debug dev_size_mb=4
sdebug_dev() { ls /sys/bus/pseudo/drivers/scsi_debug/adapter0/host*/target*/*/block 2>/dev/null | head -1; }
sdebug_ready() { local b; b=$(sdebug_dev); [ -n "$b" ] && [ -b "/dev/$b" ]; }
wait_for 30 "the scsi_debug disk" sdebug_ready
put HARNESS_SCSI_NOPR_DEV "/dev/$(sdebug_dev)"

# ---- network namespaces for daemon-level tests ------------------------------------------------
if [ "${HARNESS_SCSI_NETNS:-1}" = 1 ]; then
  modprobe veth
  modprobe bridge
  ip link add hs-br type bridge
  ip link set hs-br up
  for n in $(seq 1 "$NODES"); do
    ns=hs-node$n
    ip netns add "$ns"
    ip link add "hs-veth$n" type veth peer name eth0 netns "$ns"
    ip link set "hs-veth$n" master hs-br up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "10.77.0.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    put "HARNESS_SCSI_NETNS_N$n" "$ns"
    put "HARNESS_SCSI_ADDR_N$n" "10.77.0.$n"
  done
fi
say "environment:"; sed 's/^/[target]   /' "$ENV"
