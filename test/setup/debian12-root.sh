#!/bin/sh
# Builds (once) a minimal Debian 12 "bookworm" root as a tarball, for installing, upgrading and
# purging our .deb and .rpm packages in a throwaway copy (test/integration/packages.test.ts),
# and prints the tarball's path.
#
# What is in it: --variant=apt (Essential packages + apt) plus systemd and init-system-helpers,
# so the packages' maintainer scripts run for real (deb-systemd-helper, `systemctl preset` in
# a chroot), and rpm's scriptlets find /bin/sh. Foreign architectures arm64 and armhf are
# enabled, so the device debs can be unpacked (their binaries are never run there).
#
# Idempotent: a finished tarball sits next to a stamp naming its contents and is reused; a
# half-built one is removed and built again. It lives outside the checkout (a cache):
#   the first argument, else $QUBES_AIR_DEBIAN12_ROOT, else /var/cache/qubes-air/debian12-root.tar
#   as root, else ${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/debian12-root.tar.
# Must never: touch anything outside that cache directory except installing mmdebstrap.
set -eu

if [ -n "${1:-}" ]; then
	tarball=$1
elif [ -n "${QUBES_AIR_DEBIAN12_ROOT:-}" ]; then
	tarball=$QUBES_AIR_DEBIAN12_ROOT
elif [ "$(id -u)" = 0 ]; then
	tarball=/var/cache/qubes-air/debian12-root.tar
else
	tarball=${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/debian12-root.tar
fi
stamp=$tarball.complete
# Bump when the contents change, so an older cached root is rebuilt.
want="bookworm apt systemd init-system-helpers arm64 armhf v1"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -s "$tarball" ]; then
	echo "$tarball"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "debian12-root: building the Debian 12 root needs root" >&2
	exit 1
fi

mkdir -p "$(dirname "$tarball")"
# One builder at a time (parallel test files may all ask for it).
exec 9>"$tarball.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -s "$tarball" ]; then
	echo "$tarball"
	exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
	# A transient index error of `apt-get update` is fine as long as the install works.
	apt-get update >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap >&2
fi

rm -f "$tarball" "$tarball.tmp" "$stamp"
mmdebstrap --mode=root --variant=apt --include=systemd,init-system-helpers \
	--architectures=amd64,arm64,armhf \
	--keyring=/usr/share/keyrings/debian-archive-keyring.gpg --aptopt='Acquire::Retries "3"' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --format=tar \
	bookworm "$tarball.tmp" http://deb.debian.org/debian >&2
mv "$tarball.tmp" "$tarball"
echo "$want" >"$stamp"
echo "$tarball"
