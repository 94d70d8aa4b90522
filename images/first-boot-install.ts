/**
 * Installing the agent package at a device's first boot (pure texts and a RootEntry plan): the
 * image carries qubes-air-agent_V_ARCH.deb (and, on the armory, Debian's armhf Node packages it
 * depends on) in a root-only directory, and a one-shot unit runs a script that installs them
 * with dpkg, enables the package's unit, starts it, and removes itself.
 *
 * Why the device's config is written in place before the package exists, with
 * `dpkg --force-confold`: the package owns /etc/qubes-air/agent.json as a conffile, and its
 * unit reads only that file. A file found at a conffile path on a first install is the admin's
 * (dpkg would otherwise ask, and with no terminal fail); --force-confold keeps it, and dpkg then
 * books it as locally changed, so later upgrades keep it too, as for any admin edit. A drop-in
 * directory would need the agent to merge configs (a second format to get wrong), and writing the
 * config only after installing leaves a window where the unit could start with the default name.
 * Must never: downgrade or replace a package the image already has (Node's libraries are only
 * installed where the image lacks them), read from the network, or leave the .debs behind.
 * Spec: issue 10 (the image builder and cloud-init use the agent package).
 */
import { AGENT_UNIT } from "../packaging/layout.ts";
import { dir, file, type RootEntry, symlink } from "./rootfs.ts";

export const INSTALL = {
  dir: "/var/lib/qubes-air-install",
  runtimeDir: "/var/lib/qubes-air-install/runtime",
  script: "/var/lib/qubes-air-install/install.sh",
  unitName: "qubes-air-install.service",
  unit: "/etc/systemd/system/qubes-air-install.service",
  wants: "/etc/systemd/system/multi-user.target.wants",
} as const;

/** The install script; `agentDeb` is the package's file name inside INSTALL.dir. */
export function installScript(agentDeb: string): string {
  if (!/^[A-Za-z0-9._+~-]+\.deb$/.test(agentDeb)) throw new Error(`bad package file name ${agentDeb}`);
  return `#!/bin/sh
# qubes-air first boot: install the agent package (written by qubes-air image build or cloud).
# The device's own /etc/qubes-air/agent.json is already in place: --force-confold keeps it.
set -eu
cd ${INSTALL.dir}
if [ ! -f ./${agentDeb} ]; then
  # The cloud path fetches it first; a failed or refused download leaves nothing to install.
  echo "qubes-air: no agent package at ${INSTALL.dir}/${agentDeb} (its download failed, see above): nothing installed" >&2
  exit 1
fi
set -- ./${agentDeb}
# Runtime packages (Debian's Node on the armory): only those the system does not have yet.
for deb in runtime/*.deb; do
  [ -e "$deb" ] || continue
  pkg=$(dpkg-deb -f "$deb" Package)
  if [ "$(dpkg-query -W -f='\${db:Status-Status}' "$pkg" 2>/dev/null || true)" = installed ]; then
    continue
  fi
  set -- "$@" "./$deb"
done
dpkg --force-confold -i "$@" </dev/null
systemctl enable ${AGENT_UNIT}
systemctl disable ${INSTALL.unitName} 2>/dev/null || true
cd /
rm -rf ${INSTALL.dir}
if [ -d /run/systemd/system ]; then
  systemctl start --no-block ${AGENT_UNIT}
fi
echo "qubes-air: agent package installed and started"
`;
}

export function installUnit(): string {
  return `# qubes-air: install the agent package at first boot (written by qubes-air image build or cloud)
[Unit]
Description=qubes-air: install the agent package (first boot)
ConditionPathExists=${INSTALL.script}
After=local-fs.target
Before=${AGENT_UNIT}
# Retried (below) ten times, then left for the next boot: a broken install must not loop forever.
StartLimitIntervalSec=600
StartLimitBurst=10

[Service]
Type=oneshot
ExecStart=${INSTALL.script}
# Another package manager run (cloud-init, unattended-upgrades) may hold dpkg's lock: try again.
Restart=on-failure
RestartSec=20
StandardOutput=journal

[Install]
WantedBy=multi-user.target
`;
}

/** A runtime .deb's name in the image: apt-get download writes an epoch as %3a; dpkg reads the
 * package's name and version from inside, so the file name only has to be a plain one. */
export function runtimeDebName(file: string): string {
  return file
    .split("/")
    .pop()!
    .replace(/%3a/gi, ":")
    .replace(/[^A-Za-z0-9._+:~-]/g, "_");
}

/** The plan: the .debs (agent and runtime), the script, the unit and its enable link. */
export function installPlan(
  agentDeb: { name: string; file: string },
  runtimeDebs: readonly string[],
): RootEntry[] {
  const plan: RootEntry[] = [
    dir(INSTALL.dir, 0o700),
    file(`${INSTALL.dir}/${agentDeb.name}`, 0o644, { file: agentDeb.file }),
    file(INSTALL.script, 0o755, installScript(agentDeb.name)),
    file(INSTALL.unit, 0o644, installUnit()),
    symlink(`${INSTALL.wants}/${INSTALL.unitName}`, INSTALL.unit),
  ];
  if (runtimeDebs.length > 0) {
    plan.push(dir(INSTALL.runtimeDir, 0o700));
    for (const d of runtimeDebs) {
      plan.push(file(`${INSTALL.runtimeDir}/${runtimeDebName(d)}`, 0o644, { file: d }));
    }
  }
  return plan;
}
