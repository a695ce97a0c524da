#!/usr/bin/env bash
# Builds centra-pxe_<version>_<arch>.deb with dpkg-deb, from a bootstrapped checkout (scripts/bootstrap:
# node_modules installed and built by `npm ci` for this machine's Node):
#
#   packaging/deb/build.sh [OUTPUT_DIR]      # default: the current directory; prints the .deb's path
#
# The app is what `npm pack` publishes (dist/, the addons' sources, the shrinkwrap), unpacked in
# /usr/lib/centra-pxe with the production dependencies and the native addons built for this Node
# (better-sqlite3's is ABI-specific, hence Depends on this Node's major version). Also: the systemd unit,
# the conffile /etc/centra-pxe/config.yaml, /var/lib/centra-pxe, and postinst creating the centra-pxe user.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)"
cd "$repo"

[ -d node_modules/better-sqlite3 ] || { echo "build.sh: run scripts/bootstrap first (no node_modules)" >&2; exit 1; }
version="$(node -p 'require("./package.json").version')"
arch="$(dpkg --print-architecture)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
app="$root/usr/lib/centra-pxe"

# What npm publishes, as the app ($CENTRA_PXE_TGZ: a tarball `npm pack` made already, to save a build).
tarball="${CENTRA_PXE_TGZ:-}"
if [ -z "$tarball" ]; then
  npm pack --pack-destination "$work" --loglevel=error >/dev/null
  tarball="$work/centra-pxe-$version.tgz"
fi
mkdir -p "$app"
tar -xzf "$tarball" -C "$app" --strip-components=1

# Production dependencies: the checkout's, already built for this Node by `npm ci`, pruned of the rest.
cp -a node_modules "$app/node_modules"
(cd "$app" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error >/dev/null)
# Our addons, built here against this Node's headers; only the shared objects are kept.
(cd "$app" && npm run build:native --silent >/dev/null)
mkdir "$work/addons" && mv "$app"/build/Release/*.node "$work/addons/"
rm -rf "$app/build" "$app/native" "$app/binding.gyp" "$app/scripts"
mkdir -p "$app/build/Release" && mv "$work"/addons/*.node "$app/build/Release/"
# better-sqlite3 needs its .node and its JavaScript; its SQLite sources and objects are 20 MB of neither.
sqlite="$app/node_modules/better-sqlite3"
find "$sqlite/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$sqlite/build/Release" -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
rm -rf "$sqlite/deps" "$sqlite/src"
rm -rf "$app/node_modules/.bin" "$app/node_modules/.package-lock.json"
find "$app/node_modules" -mindepth 1 -maxdepth 1 -type d -empty -delete # scopes prune emptied (@biomejs)

install -D -m 0644 contrib/systemd/centra-pxe.service "$root/lib/systemd/system/centra-pxe.service"
install -D -m 0644 "$here/config.yaml" "$root/etc/centra-pxe/config.yaml"
install -d -m 0750 "$root/var/lib/centra-pxe"
install -d "$root/usr/bin"
ln -s ../lib/centra-pxe/dist/cli/main.js "$root/usr/bin/centra-pxe"
install -D -m 0644 README.md "$root/usr/share/doc/centra-pxe/README.md"
printf 'Centra PXE\nLicense: Apache-2.0 (/usr/share/common-licenses/Apache-2.0)\n' >"$root/usr/share/doc/centra-pxe/copyright"

install -d "$root/DEBIAN"
for script in postinst prerm postrm; do install -m 0755 "$here/$script" "$root/DEBIAN/$script"; done
echo /etc/centra-pxe/config.yaml >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<CONTROL
Package: centra-pxe
Version: $version
Architecture: $arch
Maintainer: Centra Cloud <ops@centra.invalid>
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: nodejs (>= $node_major), nodejs (<< $((node_major + 1))), adduser, ipxe
Description: bare-metal network-boot and provisioning server
 DHCP, TFTP, HTTP and iPXE in one daemon with one YAML config: the ISC dhcpd,
 atftpd, nginx and boot.ipxe stack as one service with a provisioning lifecycle
 and a REST API. Node.js $node_major is required (NodeSource's nodejs package
 on Debian 12, whose own nodejs is older).
CONTROL

deb="$out/centra-pxe_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
