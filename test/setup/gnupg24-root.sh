#!/bin/sh
# Builds (once) a Debian 13 "trixie" root holding GnuPG 2.4 (gpg, gpg-agent, gpgconf) for the
# split-GPG version matrix (test/integration/gpg-matrix*.test.ts), and prints its path.
#
# Why a whole root: trixie's gpg needs trixie's glibc, so it runs inside the root (see
# test/integration/gpg24-tools.ts, which enters it with unshare + chroot and binds the test's
# temp dir at the same path, so homedirs and sockets are seen by both sides).
#
# Idempotent: a finished root is marked with .qubes-air-complete and reused; a half-built one
# is removed and built again. The root lives outside the checkout (a cache, never committed):
#   the first argument, else $QUBES_AIR_GNUPG24_ROOT, else /var/cache/qubes-air/gnupg24-root
#   as root, else ${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/gnupg24-root.
# Must never: touch anything outside that cache directory except installing mmdebstrap.
set -eu

if [ -n "${1:-}" ]; then
	root=$1
elif [ -n "${QUBES_AIR_GNUPG24_ROOT:-}" ]; then
	root=$QUBES_AIR_GNUPG24_ROOT
elif [ "$(id -u)" = 0 ]; then
	root=/var/cache/qubes-air/gnupg24-root
else
	root=${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/gnupg24-root
fi
stamp=$root/.qubes-air-complete
# Bump when the package list changes, so an older cached root is rebuilt.
want="trixie gpg gpg-agent gpgconf v1"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$root/usr/bin/gpg" ]; then
	echo "$root"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "gnupg24-root: building the GnuPG 2.4 root needs root (chroot and mounts)" >&2
	exit 1
fi

mkdir -p "$(dirname "$root")"
# One builder at a time (parallel test files may all ask for it).
exec 9>"$root.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$root/usr/bin/gpg" ]; then
	echo "$root"
	exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
	# A transient index error of `apt-get update` is fine as long as the install works.
	apt-get update >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap >&2
fi

rm -rf "$root" "$root.tmp"
keyring=/usr/share/keyrings/debian-archive-trixie-stable.gpg
[ -f "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mmdebstrap --mode=root --variant=essential --include=gpg,gpg-agent,gpgconf \
	--keyring="$keyring" --aptopt='Acquire::Retries "3"' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	trixie "$root.tmp" http://deb.debian.org/debian >&2
mv "$root.tmp" "$root"
echo "$want" >"$stamp"
echo "$root"
