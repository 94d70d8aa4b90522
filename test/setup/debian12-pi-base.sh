#!/bin/sh
# Builds (once) the Raspberry Pi base image the boot tests give to `qubes-air image build` (the
# real Raspberry Pi OS download is not reachable here), and prints the directory holding it:
#   raspios-like-arm64-lite.img  laid out like Raspberry Pi OS Lite (bookworm): MBR, FAT32
#       "bootfs" at 4 MiB with config.txt, cmdline.txt, kernel8.img, initramfs8 and the Pi 3
#       device tree; ext4 "rootfs" after it: Debian 12 arm64 with systemd, udev, dbus, Debian's
#       linux-image-arm64 and its modules; systemd-networkd takes DHCP on any Ethernet (Raspberry
#       Pi OS uses NetworkManager; the image builder does not touch either for a pi3 on --tcp);
#   vmlinuz, initrd.img, bcm2837-rpi-3-b.dtb  the same kernel files, for qemu's direct boot
#       (qemu's raspi machines cannot run the Pi's GPU firmware that reads config.txt).
#
# Idempotent and cached like debian12-root.sh: the first argument, else $QUBES_AIR_PI_BASE, else
# /var/cache/qubes-air/debian12-pi-base as root, else ${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/...
# The arm64 packages are configured under qemu-user (binfmt), as mmdebstrap does for a foreign
# architecture.
# Must never: touch anything outside that cache directory except installing mmdebstrap.
set -eu

if [ -n "${1:-}" ]; then
	out=$1
elif [ -n "${QUBES_AIR_PI_BASE:-}" ]; then
	out=$QUBES_AIR_PI_BASE
elif [ "$(id -u)" = 0 ]; then
	out=/var/cache/qubes-air/debian12-pi-base
else
	out=${XDG_CACHE_HOME:-$HOME/.cache}/qubes-air/debian12-pi-base
fi
stamp=$out/complete
want="bookworm arm64 linux-image-arm64 systemd-networkd raspios-lite-layout v1"

ready() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -s "$out/raspios-like-arm64-lite.img" ]; }
if ready; then
	echo "$out"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "debian12-pi-base: building the Pi base needs root (mmdebstrap --mode=root)" >&2
	exit 1
fi
mkdir -p "$(dirname "$out")"
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
mmdebstrap --mode=root --variant=minbase --architectures=arm64 \
	--include=systemd,systemd-sysv,udev,dbus,linux-image-arm64,initramfs-tools,iproute2,procps \
	--keyring=/usr/share/keyrings/debian-archive-keyring.gpg --aptopt='Acquire::Retries "3"' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='echo raspberrypi >"$1/etc/hostname"' \
	--customize-hook='printf "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n127.0.1.1\t\traspberrypi\n" >"$1/etc/hosts"' \
	--customize-hook='printf "PARTUUID=51a3ca5b-01 /boot/firmware vfat defaults 0 2\nPARTUUID=51a3ca5b-02 / ext4 defaults,noatime 0 1\n" >"$1/etc/fstab"' \
	--customize-hook='mkdir -p "$1/boot/firmware"' \
	--customize-hook='printf "[Match]\nType=ether\n\n[Network]\nDHCP=yes\n" >"$1/etc/systemd/network/50-ether.network"' \
	--customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
	--customize-hook='rm -f "$1/etc/machine-id"; touch "$1/etc/machine-id"' \
	bookworm "$tree" http://deb.debian.org/debian >&2

boot=$out.tmp/bootfs
mkdir -p "$boot"
cp "$(ls "$tree"/boot/vmlinuz-* | head -n1)" "$out.tmp/vmlinuz"
cp "$(ls "$tree"/boot/initrd.img-* | head -n1)" "$out.tmp/initrd.img"
cp "$(ls -d "$tree"/usr/lib/linux-image-*/broadcom | head -n1)/bcm2837-rpi-3-b.dtb" "$out.tmp/"
cp "$out.tmp/vmlinuz" "$boot/kernel8.img"
cp "$out.tmp/initrd.img" "$boot/initramfs8"
cp "$out.tmp/bcm2837-rpi-3-b.dtb" "$boot/"
printf '# For more options and information see\n# http://rptl.io/configtxt\ndtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\ndtoverlay=vc4-kms-v3d\nmax_framebuffers=2\narm_64bit=1\n\n[cm4]\notg_mode=1\n\n[all]\n' >"$boot/config.txt"
printf 'console=serial0,115200 console=tty1 root=PARTUUID=51a3ca5b-02 rootfstype=ext4 fsck.repair=yes rootwait\n' >"$boot/cmdline.txt"

img=$out.tmp/raspios-like-arm64-lite.img
boot_start=8192       # sectors: 4 MiB, as Raspberry Pi OS
boot_sectors=524288   # 256 MiB
root_start=$((boot_start + boot_sectors))
root_mib=1536
truncate -s $((root_start * 512 + root_mib * 1024 * 1024)) "$img"
printf 'label: dos\nlabel-id: 0x51a3ca5b\nunit: sectors\n%s,%s,c\n%s,,83\n' "$boot_start" "$boot_sectors" "$root_start" | sfdisk -q "$img"
mkfs.vfat -F 32 -n bootfs --offset "$boot_start" "$img" $((boot_sectors / 2)) >&2
MTOOLS_SKIP_CHECK=1 mcopy -i "$img@@$((boot_start * 512))" "$boot"/* ::/
mkfs.ext4 -q -F -L rootfs -E "offset=$((root_start * 512))" -d "$tree" "$img" "${root_mib}M" >&2
rm -rf "$tree" "$boot"
echo "$want" >"$out.tmp/complete"
mv "$out.tmp" "$out"
echo "$out"
