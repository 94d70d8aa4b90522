#!/bin/sh
# Builds (once) the amd64 "cloud VM" the boot tests start under qemu-system-x86_64
# (test/boot/cloud-vm.test.ts), and prints the directory holding it:
#   root.ext4    a Debian 12 root as a bare ext4 file system (the VM's /dev/vda): systemd, udev,
#                dbus (logind: the ACPI power button shuts it down cleanly), cloud-init, ifupdown
#                + DHCP (cloud-init's network renderer on Debian), curl (the user-data's agent
#                download), gnupg (split-GPG on the VM);
#   vmlinuz      Debian's linux-image-cloud-amd64 kernel, booted directly (-kernel), and
#   initrd.img   its initramfs (virtio_blk and ext4 are modules on Debian's kernels).
# It stands in for a provider's Debian 12 cloud image (which cannot be downloaded here): cloud-init
# is told to look only for a NoCloud seed, as debconf does on Debian's own "nocloud" images, so
# first boot does not spend minutes probing cloud metadata servers that user networking lacks.
#
# Idempotent: a finished build sits next to a stamp naming its contents and is reused; a
# half-built one is removed and built again. It lives outside the checkout (a cache):
#   the first argument, else $QUBES_AIR_CLOUD_VM, else /var/cache/qubes-air/debian12-cloud-vm as
#   root, else ${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/debian12-cloud-vm.
# Must never: touch anything outside that cache directory except installing mmdebstrap; the tests
# boot copy-on-write overlays of root.ext4, never the file itself.
set -eu

if [ -n "${1:-}" ]; then
	out=$1
elif [ -n "${QUBES_AIR_CLOUD_VM:-}" ]; then
	out=$QUBES_AIR_CLOUD_VM
elif [ "$(id -u)" = 0 ]; then
	out=/var/cache/qubes-air/debian12-cloud-vm
else
	out=${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/debian12-cloud-vm
fi
stamp=$out/complete
# Bump when the contents change, so an older cached VM is rebuilt.
want="bookworm amd64 cloud-init linux-image-cloud-amd64 ifupdown curl gnupg nocloud v1"

ready() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -s "$out/root.ext4" ]; }
if ready; then
	echo "$out"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "debian12-cloud-vm: building the VM's root needs root (mmdebstrap --mode=root)" >&2
	exit 1
fi

mkdir -p "$(dirname "$out")"
# One builder at a time (parallel test files may all ask for it).
exec 9>"$out.lock"
flock 9
if ready; then
	echo "$out"
	exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
	apt-get update >&2 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap >&2
fi

rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp"
tree=$out.tmp/tree
mmdebstrap --mode=root --variant=minbase \
	--include=systemd,systemd-sysv,udev,dbus,cloud-init,linux-image-cloud-amd64,initramfs-tools,ifupdown,isc-dhcp-client,iproute2,curl,ca-certificates,gnupg,gpg-agent,procps \
	--architectures=amd64 \
	--keyring=/usr/share/keyrings/debian-archive-keyring.gpg --aptopt='Acquire::Retries "3"' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='echo "datasource_list: [ NoCloud, None ]" >"$1/etc/cloud/cloud.cfg.d/90_dpkg.cfg"' \
	--customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$1/etc/fstab"' \
	--customize-hook='printf "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n" >"$1/etc/network/interfaces"' \
	--customize-hook='rm -f "$1/etc/hostname" "$1/etc/machine-id"; touch "$1/etc/machine-id"' \
	bookworm "$tree" http://deb.debian.org/debian >&2
cp "$(ls "$tree"/boot/vmlinuz-* | head -n1)" "$out.tmp/vmlinuz"
cp "$(ls "$tree"/boot/initrd.img-* | head -n1)" "$out.tmp/initrd.img"
# A sparse 2 GiB file system made from the tree without mounting anything (mke2fs -d).
mke2fs -q -t ext4 -L qa-cloud-root -d "$tree" "$out.tmp/root.ext4" 2G >&2
rm -rf "$tree"
echo "$want" >"$out.tmp/complete"
mv "$out.tmp" "$out"
echo "$out"
