#!/usr/bin/env bash
# CI step: the README's test command on a fresh machine.
#
# Bootstraps a minimal Debian 12 (bookworm) root with mmdebstrap from the Debian archive this
# machine's apt uses, holding only what README.md says a user installs first: Node.js and npm
# (Debian's nodejs/npm stand for "the machine's Node"; `npm ci` brings the pinned Node 24). Copies
# a clean tree of HEAD into it and runs exactly `npm ci && npm test` there, as root, in private
# mount/pid/uts/ipc namespaces with the root pivoted to (the network is the host's: npm and apt
# must reach their servers).
# Every other Debian package the tests need must then come from `npm test`'s pretest
# (test/setup.ts): a package missing from its NEEDS list fails this step. Nothing of the host's
# /usr is visible inside; only the host's apt sources/proxy settings, npm config (registry, CA
# file) and resolv.conf are copied in.
#
# The bootstrapped root is cached as a tarball under $HARNESS_CI_CACHE (default
# /var/cache/harness-ci), keyed by a hash of the bootstrap code, the package list, the apt
# sources and the apt options; it is rebuilt after HARNESS_FRESH_ROOT_MAX_AGE_DAYS (default 7).
# The cache only ever holds mmdebstrap's output: each run unpacks it into a new directory and
# throws that away.
#
#   sudo bash .ci/fresh-root.sh      (called by .ci/run right after the host's `npm test`)
# Settings (env): HARNESS_CI_CACHE, HARNESS_FRESH_ROOT_MAX_AGE_DAYS, HARNESS_FRESH_ROOT_NO_CACHE=1
#   (always bootstrap, do not read or write the cache), HARNESS_FRESH_ROOT_TIMEOUT (seconds for
#   `npm ci && npm test`, default 2400), HARNESS_FRESH_ROOT_KEEP=1 (keep the unpacked root),
#   HARNESS_FRESH_ROOT_DIR (where the tree goes in the root; default: the checkout's own path).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
say() { echo "[fresh-root] $*"; }
die() { say "FAILED: $*"; exit 1; }
t0=$(date +%s)
since() { echo "$(( $(date +%s) - $1 )) s"; }

SUITE=bookworm
# What a user installs before following the README (see README.md, "Tests").
BASE_PACKAGES=(nodejs npm)
# The README's test command. The step fails if README.md no longer shows exactly this line.
TEST_CMD='npm ci && npm test'
CACHE_DIR=${HARNESS_CI_CACHE:-/var/cache/harness-ci}
MAX_AGE_DAYS=${HARNESS_FRESH_ROOT_MAX_AGE_DAYS:-7}
TIMEOUT=${HARNESS_FRESH_ROOT_TIMEOUT:-2400}
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, namespaces, mounts)"
for tool in mmdebstrap unshare pivot_root git tar apt-get apt-config flock timeout sha256sum; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install mmdebstrap util-linux coreutils git)"
done
grep -qxF "$TEST_CMD" "$repo/README.md" ||
  die "README.md does not show the test command '$TEST_CMD' on a line of its own: keep the README and this step in step"

# ---- what the host's apt uses: the Debian archive (mirror, proxy) -----------------------------
# The host's own index targets, Debian's only (no third-party repositories), for this suite.
sources=$(apt-get indextargets --format '$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT)' 'Origin: Debian' 'Identifier: Packages' |
  awk -v s="$SUITE" '$1 == "deb" && ($3 == s || index($3, s "-") == 1)' | sort -u)
[ -n "$sources" ] || die "the host's apt knows no Debian $SUITE archive (apt-get update first; /etc/apt/sources.list*)"
# Settings needed to reach it the way the host does: proxies, and the archive's date checks.
aptopts=$(apt-config dump | grep -E '^Acquire::([A-Za-z0-9]+::)?(Proxy|Check-Valid-Until|Check-Date)( |::)' || true)

bootstrap() {   # bootstrap OUT.tar  (its text is part of the cache key)
  local cfg; cfg=$(mktemp -d)
  printf '%s\n' "$sources" > "$cfg/sources.list"
  printf '%s\n' "$aptopts" > "$cfg/host-apt.conf"
  say "bootstrapping Debian $SUITE (minbase + ${BASE_PACKAGES[*]}) from:"
  sed 's/^/[fresh-root]   /' "$cfg/sources.list"
  [ -z "$aptopts" ] || { say "with the host's apt settings:"; sed 's/^/[fresh-root]   /' "$cfg/host-apt.conf"; }
  local list; list=$(IFS=,; echo "${BASE_PACKAGES[*]}")
  # Every Debian machine has an /etc/hosts (the installer writes it); minbase has none.
  if ! mmdebstrap --quiet --variant=minbase --include="$list" --aptopt="$cfg/host-apt.conf" \
      --customize-hook='printf "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" > "$1/etc/hosts"' \
      "$SUITE" "$1" "$cfg/sources.list"; then
    rm -rf "$cfg" "$1"; return 1
  fi
  rm -rf "$cfg"
}

# The cache key: everything the root is built from, the bootstrap code included.
key=$(printf '%s\n' "$(declare -f bootstrap)" "$SUITE" "${BASE_PACKAGES[*]}" "$sources" "$aptopts" | sha256sum | cut -c1-16)
tarball=$CACHE_DIR/root-$SUITE-$key.tar
partial=$CACHE_DIR/partial-$SUITE-$key.tar   # mmdebstrap picks the format from the name: keep .tar

# ---- the root: from the cache, or bootstrapped now ---------------------------------------------
t_root=$(date +%s)
if [ "${HARNESS_FRESH_ROOT_NO_CACHE:-0}" = 1 ]; then
  tarball=$(mktemp -d /var/tmp/harness-fresh-root-tar.XXXXXX)/root.tar
  bootstrap "$tarball" || die "mmdebstrap failed"
  say "bootstrapped in $(since "$t_root") (cache not used)"
else
  mkdir -p "$CACHE_DIR"
  exec 9> "$CACHE_DIR/lock"
  flock 9   # one builder at a time; readers wait for a complete tarball
  # Old roots (any key) go: a stale mirror snapshot would hide a change in the archive.
  find "$CACHE_DIR" -maxdepth 1 -name 'root-*.tar' -mtime "+$((MAX_AGE_DAYS - 1))" -delete
  find "$CACHE_DIR" -maxdepth 1 -name 'partial-*.tar' -delete   # left by an interrupted build
  if [ -s "$tarball" ]; then
    say "cached root $tarball (from $(date -r "$tarball" '+%F %T'))"
  else
    bootstrap "$partial" || die "mmdebstrap failed"
    mv "$partial" "$tarball"
    say "bootstrapped in $(since "$t_root"), cached as $tarball"
  fi
  flock -u 9; exec 9>&-
fi

work=$(mktemp -d /var/tmp/harness-fresh-root.XXXXXX)
root=$work/root
remove_work() {
  [ -d "$work" ] || return 0
  # The mounts live in the step's own mount namespace, gone with it; never delete through one.
  if grep -qF " $work/" /proc/self/mountinfo; then
    say "something is still mounted under $work: left in place"
  elif [ "${HARNESS_FRESH_ROOT_KEEP:-0}" = 1 ]; then
    say "root kept in $root"
  else
    rm -rf --one-file-system "$work"
  fi
  if [ "${HARNESS_FRESH_ROOT_NO_CACHE:-0}" = 1 ]; then rm -rf "$(dirname "$tarball")"; fi
}
trap remove_work EXIT
mkdir "$root"
tar -C "$root" --numeric-owner -xpf "$tarball"
say "root unpacked in $work ($(since "$t_root") for the root so far)"

# ---- what goes in: HEAD of the repo, the host's npm and network settings ------------------------
rev=$(git -C "$repo" rev-parse --short HEAD)
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
  say "note: the checkout has uncommitted changes; the fresh root gets HEAD ($rev) only"
# At the checkout's own path: the host's `npm test` ran there, so both runs see the same
# directory permissions (ocf-tester runs agents as `nobody`, who must reach the checkout).
dest=${HARNESS_FRESH_ROOT_DIR:-$repo}
case $dest in /*) ;; *) die "HARNESS_FRESH_ROOT_DIR must be an absolute path" ;; esac
mkdir -p "$root$dest"
git -C "$repo" archive --format=tar HEAD | tar -C "$root$dest" -xf -

cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# npm: the host's global and user config (registry, auth, settings) as the root's user config,
# so npm in the root talks to the same registry the same way. A CA file it names is copied too.
npmrc=$root/root/.npmrc
: > "$npmrc"; chmod 600 "$npmrc"
if command -v npm >/dev/null; then
  for f in /etc/npmrc "$(cd / && npm config get globalconfig)" "$(cd / && npm config get userconfig)"; do
    [ -f "$f" ] && grep -vE '^\s*cafile\s*=' "$f" >> "$npmrc" && echo >> "$npmrc"
  done
  echo "registry=$(cd / && npm config get registry)" >> "$npmrc"
  cafile=$(cd / && npm config get cafile)
  if [ -n "$cafile" ] && [ "$cafile" != null ] && [ "$cafile" != undefined ] && [ -f "$cafile" ]; then
    # Not under /etc/ssl: the root's ca-certificates (if a test pulls it in) would overwrite it.
    mkdir -p "$root/etc/harness-ci"
    cp -L "$cafile" "$root/etc/harness-ci/npm-ca.pem"
    echo "cafile=/etc/harness-ci/npm-ca.pem" >> "$npmrc"
  fi
fi
say "npm registry in the root: $(grep -E '^registry=' "$npmrc" | tail -n 1 | cut -d= -f2-)"
# Proxy variables, if this machine uses them, are network settings too.
envs=(HOME=/root USER=root LOGNAME=root PATH="$ROOT_PATH" SHELL=/bin/bash)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && envs+=("$v=${!v}")
done

# ---- run it ----------------------------------------------------------------------------------
# PID 1 of the new pid namespace is a shell that reaps orphans (tests leave daemons' children
# behind on purpose) and, when it ends, takes every process of the step with it (--kill-child:
# also when `timeout` kills unshare).
inner='
set -e
r=$1; shift
mount --bind "$r" "$r"          # the new / must be a mount point (pivot_root, ip netns exec)
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount -t devtmpfs devtmpfs "$r/dev"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
mount --bind "$r/dev/pts/ptmx" "$r/dev/ptmx"
mkdir -p "$r/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mkdir -p "$r/run/lock"
# pivot_root, not just chroot: the host tree is then gone from this mount namespace, so not even
# a setns() into it (nsenter -m, as the system tier does) reaches the host.
cd "$r"
pivot_root . mnt
cd /
umount -l /mnt
set +e
"$@"
rc=$?
exit $rc
'
say "running '$TEST_CMD' in the fresh root, in $dest (HEAD $rev), as root; timeout ${TIMEOUT} s"
log=$work/test.log
t_test=$(date +%s)
set +e
timeout --kill-after=30 "$TIMEOUT" \
  unshare --mount --pid --fork --kill-child --uts --ipc --propagation private -- \
  /bin/bash -c "$inner" fresh-root-init "$root" \
  /usr/bin/env -i "${envs[@]}" /bin/bash -c "cd \"\$1\" && $TEST_CMD" run "$dest" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 124 ] && say "timed out after $TIMEOUT s"

took=$(since "$t_test")
tiers=$(grep -E '^(unit|integration): [0-9]+ passed, [0-9]+ failed$' "$log" || true)
remove_work; trap - EXIT
say "'$TEST_CMD' took $took; the whole step $(since "$t0") (exit $rc)"
if [ -z "$tiers" ]; then
  say "no tier summary in the output"
  [ "$rc" = 0 ] && rc=1
else
  say "tiers in the fresh root:"
  printf '%s\n' "$tiers"
fi
exit "$rc"
