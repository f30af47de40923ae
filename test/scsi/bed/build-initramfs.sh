#!/bin/bash
# Builds the guest's stage-1 initramfs: a static busybox, the few modules needed to reach the
# host's root filesystem over virtio-9p and to put a writable overlay on it, and our stage-1 init.
# Everything else (LIO, iSCSI, sd, netns tooling, node) is used straight from the host's own
# filesystem once the guest runs on it, so there is no image to build or keep in sync.
# usage: build-initramfs.sh KERNEL_VERSION OUTPUT.cpio.gz
set -euo pipefail
kver=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d "$(dirname "$out")/initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,dev,proc,sys,mnt/lower,mnt/upper,newroot,modules}
# The host's busybox must be the static build: the initramfs has no libc.
if ldd /bin/busybox >/dev/null 2>&1; then
  echo "build-initramfs: /bin/busybox is dynamically linked; install busybox-static" >&2; exit 1
fi
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# modprobe resolves the dependency order for us; keep the first occurrence of each module.
for mod in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe --set-version "$kver" --show-depends "$mod" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' > "$root/modules/paths"
: > "$root/modules/load-order"
while read -r ko; do
  name=$(basename "$ko")
  case $name in   # Debian ships modules uncompressed, xz or zstd depending on the release.
    *.ko.xz)  xz -dc "$ko" > "$root/modules/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -qdc "$ko" > "$root/modules/${name%.zst}"; name=${name%.zst} ;;
    *)        cp "$ko" "$root/modules/$name" ;;
  esac
  echo "$name" >> "$root/modules/load-order"
done < "$root/modules/paths"

install -m 755 "$here/init" "$root/init"
(cd "$root" && find . -print0 | cpio --null --create --format=newc --quiet) | gzip -1 > "$out"
