/**
 * What the image builder puts into a device's root filesystem, as a RootEntry plan (pure): the
 * agent package and its first-boot install (first-boot-install.ts), the device's own config and
 * hardware description where the package reads them, a one-time pairing token (0600 in the
 * package's 0700 state dir, root-owned), the USB gadget script and unit, kernel modules, the
 * hostname and the gadget's network address. Where the agent's files go is the package's
 * business (packaging/layout.ts AGENT_PATHS); the paths here are the image's own.
 */
import type { BoardProfile } from "../hw/boards.ts";
import { type GadgetSpec, gadgetShellScript } from "../hw/usb-gadget.ts";
import { AGENT_PATHS, AGENT_UNIT } from "../packaging/layout.ts";
import { installPlan } from "./first-boot-install.ts";
import { dir, file, type RootEntry, symlink } from "./rootfs.ts";

export const PATHS = {
  configDir: AGENT_PATHS.configDir,
  config: AGENT_PATHS.config,
  policyDir: AGENT_PATHS.policyDir,
  stateDir: AGENT_PATHS.stateDir,
  hardware: `${AGENT_PATHS.configDir}/hardware.json`,
  /** The agent's one-time token file in its state directory (agent/link/state.ts). */
  token: `${AGENT_PATHS.stateDir}/pairing-token`,
  gadgetUnit: "/etc/systemd/system/qubes-air-gadget.service",
  gadgetScript: "/usr/local/lib/qubes-air/usb-gadget.sh",
  gadgetStart: "/usr/local/lib/qubes-air/usb-gadget-start.sh",
  wants: "/etc/systemd/system/multi-user.target.wants",
  modules: "/etc/modules-load.d/qubes-air.conf",
  nmConnection: "/etc/NetworkManager/system-connections/qubes-air-usb0.nmconnection",
  ifupdown: "/etc/network/interfaces.d/qubes-air-usb0",
} as const;

export const AGENT_UNIT_NAME = AGENT_UNIT;
export const GADGET_UNIT_NAME = "qubes-air-gadget.service";

export interface DeviceSetup {
  readonly board: BoardProfile;
  readonly name: string;
  /** The agent's listen section: tty and/or tcp. */
  readonly listen: { readonly tty?: string; readonly tcp?: string };
  readonly token: string;
  readonly gadget: GadgetSpec | null;
  /** The agent package (a host file) and the name the image keeps it under. */
  readonly agentDeb: { readonly name: string; readonly file: string };
  /** Packages it depends on that the image lacks (the armory's Node), host files. */
  readonly runtimeDebs: readonly string[];
  /** Configure the gadget's network interface (usb0) with this IPv4 address/prefix. */
  readonly usbAddress: {
    readonly address: string;
    readonly prefix: number;
    readonly via: "nm" | "ifupdown";
  } | null;
}

export function agentConfig(s: Pick<DeviceSetup, "name" | "listen">): Record<string, unknown> {
  return {
    name: s.name,
    listen: { ...s.listen },
    stateDir: PATHS.stateDir,
    policyDir: PATHS.policyDir,
  };
}

export function gadgetUnit(): string {
  return `# qubes-air USB gadget: CDC-ACM serial (/dev/ttyGS0) + CDC-ECM network (usb0)
[Unit]
Description=qubes-air USB gadget (serial + network)
Requires=sys-kernel-config.mount
After=sys-kernel-config.mount systemd-modules-load.service
Before=${AGENT_UNIT_NAME} network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${PATHS.gadgetStart}

[Install]
WantedBy=multi-user.target
`;
}

/** Waits (up to 10 s) for the USB device controller to appear, then runs the gadget script. */
export function gadgetStartScript(): string {
  return `#!/bin/sh
# qubes-air: wait for the USB device controller (dwc2 / chipidea), then set up the gadget.
i=0
while [ -z "$(ls /sys/class/udc 2>/dev/null)" ] && [ "$i" -lt 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
exec ${PATHS.gadgetScript}
`;
}

export function nmConnection(address: string, prefix: number): string {
  return `# qubes-air: the USB gadget's network link to sys-remote
[connection]
id=qubes-air-usb0
type=ethernet
interface-name=usb0
autoconnect=true

[ethernet]

[ipv4]
method=manual
address1=${address}/${prefix}
never-default=true

[ipv6]
method=link-local
`;
}

export function ifupdownStanza(address: string, prefix: number): string {
  return `# qubes-air: the USB gadget's network link to sys-remote
allow-hotplug usb0
iface usb0 inet static
  address ${address}/${prefix}
`;
}

export function hardwareDescription(s: DeviceSetup): Record<string, unknown> {
  return {
    board: s.board.id,
    name: s.board.name,
    button: s.board.buttons[0] ?? null,
    approvalAlternative: s.board.approvalAlternative,
    leds: s.board.leds.map((l) => ({ names: l.names, role: l.role })),
    usbGadget: s.gadget
      ? {
          serial: s.gadget.serial,
          hostMac: s.gadget.hostMac,
          devMac: s.gadget.devMac,
          functions: s.board.usbGadget?.functions ?? [],
        }
      : null,
  };
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

export function devicePlan(s: DeviceSetup): RootEntry[] {
  const plan: RootEntry[] = [
    dir(PATHS.configDir),
    file(PATHS.config, 0o644, json(agentConfig(s))),
    file(PATHS.hardware, 0o644, json(hardwareDescription(s))),
    dir(PATHS.stateDir, 0o700),
    file(PATHS.token, 0o600, `${s.token}\n`),
    ...installPlan(s.agentDeb, s.runtimeDebs),
  ];
  if (s.gadget) {
    const modules = s.board.usbGadget?.modules ?? [];
    plan.push(
      file(PATHS.gadgetScript, 0o755, gadgetShellScript(s.board, s.gadget)),
      file(PATHS.gadgetStart, 0o755, gadgetStartScript()),
      file(PATHS.gadgetUnit, 0o644, gadgetUnit()),
      symlink(`${PATHS.wants}/${GADGET_UNIT_NAME}`, PATHS.gadgetUnit),
      file(PATHS.modules, 0o644, `# qubes-air USB gadget\n${modules.join("\n")}\n`),
      // The link's tty is the agent's alone: no login prompt may ever be started on it.
      symlink("/etc/systemd/system/serial-getty@ttyGS0.service", "/dev/null"),
    );
  }
  if (s.usbAddress?.via === "nm") {
    plan.push(file(PATHS.nmConnection, 0o600, nmConnection(s.usbAddress.address, s.usbAddress.prefix)));
  } else if (s.usbAddress?.via === "ifupdown") {
    plan.push(file(PATHS.ifupdown, 0o644, ifupdownStanza(s.usbAddress.address, s.usbAddress.prefix)));
  }
  return plan;
}

/** Hostname files (images without cloud-init): /etc/hostname and the 127.0.1.1 line of /etc/hosts. */
export function hostnamePlan(hostname: string, hosts: string | null): RootEntry[] {
  const plan: RootEntry[] = [file("/etc/hostname", 0o644, `${hostname}\n`)];
  if (hosts !== null) {
    const lines = hosts.split("\n").filter((l) => !/^127\.0\.1\.1\s/.test(l));
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    lines.push(`127.0.1.1\t${hostname}`, "");
    plan.push(file("/etc/hosts", 0o644, lines.join("\n")));
  }
  return plan;
}
