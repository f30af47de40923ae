#!/bin/bash
# Pulls the uncompressed ELF kernel out of a Debian bzImage. QEMU can boot an ELF vmlinux through
# its PVH entry point, which skips real-mode setup and in-guest decompression: several seconds
# under software emulation (TCG), for nothing.
# usage: extract-vmlinux.sh BZIMAGE OUTPUT   (exit 1 when no payload decompresses to an ELF)
set -euo pipefail
in=$1 out=$2
is_elf() { [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }
# try MAGIC DECOMPRESSOR...: decompress from every offset where MAGIC occurs until one is an ELF.
try() {
  local magic=$1 off; shift
  for off in $(LC_ALL=C grep --byte-offset --only-matching --binary --text --perl-regexp "$magic" "$in" | cut -d: -f1); do
    tail -c "+$((off + 1))" "$in" | "$@" > "$out.part" 2>/dev/null || true
    if is_elf "$out.part"; then mv "$out.part" "$out"; return 0; fi
  done
  return 1
}
try '\x28\xb5\x2f\xfd' zstd -dc || try '\xfd\x37\x7a\x58\x5a\x00' xz -dc --single-stream ||
  try '\x1f\x8b\x08' gzip -dc || { rm -f "$out.part"; exit 1; }
