#!/usr/bin/env bash
# The system tools the tests use for real (no mocks), checked before every test run, so that
# "the two commands on a fresh machine" hold: as root the missing Debian packages are installed;
# otherwise the one apt-get line that installs them is printed and the run stops (exit 1).
#   socat: pty pairs standing in for USB-serial lines; openssh: the bench's and tests' SSH peer;
#   gnupg/gpg-agent: real split-GPG; mtools, dosfstools, fdisk, e2fsprogs: images without root;
#   qemu-user-static + arm64/armhf libc: the device agents under emulation; cloud-init: schema
#   check; qrencode: QR cross-check; gpiod: libgpiod tools; curl: the cloud image fetch test;
#   python3-venv: the venv scripts/salt-venv.sh puts real Salt in;
#   rpm (rpmbuild), lintian, rpmlint: `bun run package` and its lint; mmdebstrap: the Debian 12
#   root the packages are installed in (test/setup/debian12-root.sh); systemd: `systemctl --root`
#   checks which units the packages enable; faketime (libfaketime): the chaos suite's device
#   clock jumps (chaos/device-clock.ts); qemu-system-x86, qemu-system-arm, qemu-utils: the boot
#   tests (test/boot/) start the images under full-system emulation on overlays (qemu-img).
#   As root it also builds the GnuPG 2.4 root (test/setup/gnupg24-root.sh); otherwise the gpg
#   matrix tests build it or, without root, fail saying so.
# Must never: ask a question (apt runs non-interactive) or stop on a transient index error when
# the install itself succeeds.
set -euo pipefail

packages=(socat openssh-server openssh-client gnupg gpg-agent mtools dosfstools fdisk e2fsprogs
  qemu-user-static binfmt-support libc6:arm64 libc6:armhf cloud-init qrencode gpiod curl python3 python3-venv
  rpm lintian rpmlint mmdebstrap systemd faketime qemu-system-x86 qemu-system-arm qemu-utils)

if ! command -v dpkg-query >/dev/null; then
  echo "system-deps: not a Debian/Ubuntu machine; install the equivalents of: ${packages[*]}" >&2
  exit 1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
gnupg24_root() {
  # GnuPG 2.4 (Debian 13) for the split-GPG version matrix, in a cached root outside the checkout.
  if [ "$(id -u)" = 0 ]; then sh "$(dirname "$0")/../test/setup/gnupg24-root.sh" >/dev/null; fi
}
if [ ${#missing[@]} -eq 0 ]; then
  gnupg24_root
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing system packages. Install them with:" >&2
  echo "  sudo dpkg --add-architecture arm64 && sudo dpkg --add-architecture armhf && sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "system-deps: installing ${missing[*]}" >&2
dpkg --add-architecture arm64
dpkg --add-architecture armhf
# `apt-get update` exits non-zero when one index fails (an armhf mirror "sync in progress" is
# transient); the install is what must succeed, so it is retried after a fresh update.
for attempt in 1 2 3; do
  apt-get update -qq || echo "system-deps: apt-get update reported errors (attempt $attempt); trying the install" >&2
  if apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    gnupg24_root
    exit 0
  fi
done
echo "system-deps: could not install: ${missing[*]}" >&2
exit 1
