#!/usr/bin/env bash
# `npm run package`: builds dist/harness_<version>_<arch>.deb with Debian's own tools only
# (dpkg-deb, gzip, strip from binutils), from this checkout after `npm ci`.
# Layout: /usr/lib/harness/{node,dist,node_modules,package.json} (the program and its own runtime),
# /usr/bin/harness, /usr/lib/ocf/resource.d/harness/ (bundled agents), /etc/harness/,
# harness.service, man pages, bash completion, logrotate snippet.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
out=$top/dist/harness_${version}_${arch}.deb

npm run build >/dev/null

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
lib=$root/usr/lib/harness
install -d "$lib" "$root/usr/bin" "$root/usr/lib/ocf/resource.d/harness" "$root/etc/harness/hierarchies" \
  "$root/lib/systemd/system" "$root/usr/share/man/man8" "$root/usr/share/man/man5" \
  "$root/usr/share/bash-completion/completions" "$root/etc/logrotate.d" "$root/usr/share/doc/harness/examples" \
  "$root/usr/share/lintian/overrides" "$root/DEBIAN"

# The program: built JavaScript, the production dependencies, package.json ("type": "module", version).
cp -a dist/. "$lib/dist/"
rm -f "$lib/dist/"*.deb "$lib/dist/agents/resource.d"
# The bundled agents live where OCF agents live; the program finds them through this link.
ln -s ../../../ocf/resource.d "$lib/dist/agents/resource.d"
install -m 0755 agents/resource.d/harness/* "$root/usr/lib/ocf/resource.d/harness/"
cp package.json package-lock.json "$lib/"
cp -a node_modules "$lib/"
(cd "$lib" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
rm -rf "$lib/package-lock.json" "$lib/node_modules/.bin" "$lib/node_modules/.package-lock.json"
# Its own runtime: the pinned Node (npm package `node`), stripped of debug symbols.
install -m 0755 "$(readlink -f node_modules/.bin/node)" "$lib/node"
rm -rf "$lib/node_modules/node"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$lib/node"
# Run through /usr/bin/harness only: no shebang to an interpreter that is not on the system.
sed -i '1{/^#!/d}' "$lib/dist/bin/"*.js
# ssh2's optional native speed-up is not built (allowScripts): its sources are not needed.
rm -rf "$lib/node_modules/cpu-features" "$lib/node_modules/nan"
# Files Debian does not want in a binary package (tests, web pages, VCS and editor files; licenses
# go to copyright).
find "$lib/node_modules" \( -name '.*' -o -name test -o -name '*.html' -o -iname 'LICENSE*' -o -iname 'LICENCE*' -o -name '*.md' -o -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -prune -exec rm -rf {} +

install -m 0755 packaging/harness "$root/usr/bin/harness"
install -m 0644 packaging/cluster.yaml "$root/etc/harness/cluster.yaml"
install -m 0644 packaging/harness.service "$root/lib/systemd/system/harness.service"
install -m 0644 packaging/logrotate "$root/etc/logrotate.d/harness"
cp -r examples/cluster.yaml examples/hierarchies "$root/usr/share/doc/harness/examples/"
install -m 0644 packaging/lintian-overrides "$root/usr/share/lintian/overrides/harness"

# Man pages and completion from the program's own help and the configuration reference.
node packaging/man.ts node dist/bin/harness.js -- "$stage/gen"
gzip -9n <"$stage/gen/harness.8" >"$root/usr/share/man/man8/harness.8.gz"
gzip -9n <"$stage/gen/harness.yaml.5" >"$root/usr/share/man/man5/harness.yaml.5.gz"
install -m 0644 "$stage/gen/harness.bash-completion" "$root/usr/share/bash-completion/completions/harness"

# Documentation Debian requires: copyright (with the bundled parts) and a changelog.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
{
  echo 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/'
  echo 'Upstream-Name: harness'
  echo
  echo 'Files: *'
  echo 'Copyright: 2025-2026 the harness authors'
  echo 'License: MIT'
  echo
  echo 'Files: usr/lib/harness/node'
  echo 'Copyright: Node.js contributors and other contributors'
  echo 'License: MIT'
  echo
  echo 'Files: usr/lib/harness/node_modules/*'
  echo 'Copyright: Copyright the authors of each module (see its package.json)'
  echo 'License: MIT or ISC or BSD-2-Clause or Apache-2.0, as each module states'
  echo
  echo 'License: MIT'
  sed 's/^/ /; s/^ $/ ./' packaging/MIT
} >"$root/usr/share/doc/harness/copyright"
printf 'harness (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- harness maintainers <harness@example.org>  %s\n' "$version" "$version" "$date" |
  gzip -9n >"$root/usr/share/doc/harness/changelog.gz"

find "$root" -type d -exec chmod 0755 {} +
# Only the runtime and the guard (run by path) are executables; scripts inside
# dependencies are never run as commands.
find "$root/usr/lib/harness" -type f ! -name node ! -name guard.sh -exec chmod 0644 {} +
chmod 0755 "$lib/dist/harness/guard.sh"

installed=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: harness
Version: $version
Architecture: $arch
Maintainer: harness maintainers <harness@example.org>
Installed-Size: $installed
Depends: libc6 (>= 2.28), libgcc-s1 (>= 3.0), libstdc++6 (>= 12)
Recommends: resource-agents, sg3-utils
Suggests: pacemaker, prometheus
Section: admin
Priority: optional
Homepage: https://github.com/harness-ha/harness
Description: resource-driven failover for Linux clusters
 harness runs hierarchies of dependent resources (application, virtual IP,
 file system, shared disk) on one node of a cluster and moves them to
 another node when that one fails. There is no quorum and no leader: each
 node decides on its own, and the ownership of the hierarchy's disks
 (SCSI-3 persistent reservations) is the final arbiter. Resources are driven
 by standard OCF resource agents.
CONTROL
printf '/etc/harness/cluster.yaml\n/etc/logrotate.d/harness\n' >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "package: $out ($(du -h "$out" | cut -f1), installed $((installed / 1024)) MiB)"
