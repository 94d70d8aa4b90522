/**
 * Maintainer scripts (deb) and scriptlets (rpm) for the packages with a systemd unit, in the
 * shape debhelper's dh_installsystemd and Fedora's %systemd_* macros produce (written out here:
 * the packages are built with dpkg-deb and rpmbuild alone). Pure text.
 * Must never: start a unit on install (the sys-remote unit starts at the qube's next boot, where
 * the qube has the service; the agent's after the operator configured it), fail a package
 * operation because systemd is not running (chroots, image builds), or touch state under /home or
 * /var/lib/qubes-air on purge (it is the user's: keys, registry, audit log).
 */
import type { PackageSpec } from "./layout.ts";

const SH = "#!/bin/sh\nset -e\n";

export function debPostinst(spec: PackageSpec): string | null {
  if (!spec.unit) return null;
  const u = `'${spec.unit.name}'`;
  const udev = spec.name === "qubes-air-sys-remote";
  const enable = spec.unit.enable
    ? `\t# was-enabled is true on a new installation, so the unit is enabled then (the qube service
\t# decides whether it runs); an operator's disable is kept across upgrades.
\tif deb-systemd-helper --quiet was-enabled ${u}; then
\t\tdeb-systemd-helper enable ${u} >/dev/null || true
\telse
\t\tdeb-systemd-helper update-state ${u} >/dev/null || true
\tfi`
    : `\t# Not enabled on install: the operator enables it after editing /etc/qubes-air/agent.json.
\tdeb-systemd-helper update-state ${u} >/dev/null || true`;
  return `${SH}
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
\t# Only removes masks deb-systemd-helper made on package removal.
\tdeb-systemd-helper unmask ${u} >/dev/null || true
${enable}
\tif [ -d /run/systemd/system ]; then
\t\tsystemctl --system daemon-reload >/dev/null || true
\t\tif [ -n "$2" ]; then
\t\t\tdeb-systemd-invoke try-restart ${u} >/dev/null || true
\t\tfi
\tfi${
    udev
      ? `
\tif [ -d /run/udev ] && command -v udevadm >/dev/null 2>&1; then
\t\tudevadm control --reload-rules || true
\tfi`
      : ""
  }
fi

exit 0
`;
}

export function debPrerm(spec: PackageSpec): string | null {
  if (!spec.unit) return null;
  return `${SH}
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
\tdeb-systemd-invoke stop '${spec.unit.name}' >/dev/null || true
fi

exit 0
`;
}

export function debPostrm(spec: PackageSpec): string | null {
  if (!spec.unit) return null;
  const u = `'${spec.unit.name}'`;
  return `${SH}
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
\tsystemctl --system daemon-reload >/dev/null || true
fi

if [ "$1" = "remove" ]; then
\tif [ -x "/usr/bin/deb-systemd-helper" ]; then
\t\tdeb-systemd-helper mask ${u} >/dev/null || true
\tfi
fi

if [ "$1" = "purge" ]; then
\tif [ -x "/usr/bin/deb-systemd-helper" ]; then
\t\tdeb-systemd-helper purge ${u} >/dev/null || true
\t\tdeb-systemd-helper unmask ${u} >/dev/null || true
\tfi
fi

exit 0
`;
}

/** rpm scriptlets (%post, %preun, %postun) as spec file sections, or "" without a unit. */
export function rpmScriptlets(spec: PackageSpec): string {
  if (!spec.unit) return "";
  const u = spec.unit.name;
  return `%post
# On first installation, enable or not as the preset says (75-qubes-air.preset: enabled; the
# qube service decides whether it runs). Works in a chroot, where systemd is not running.
if [ $1 -eq 1 ]; then
    systemctl --no-reload preset ${u} >/dev/null 2>&1 || :
fi
udevadm control --reload-rules >/dev/null 2>&1 || :

%preun
if [ $1 -eq 0 ]; then
    systemctl --no-reload disable ${u} >/dev/null 2>&1 || :
    systemctl stop ${u} >/dev/null 2>&1 || :
fi

%postun
if [ $1 -ge 1 ]; then
    systemctl try-restart ${u} >/dev/null 2>&1 || :
fi
`;
}
