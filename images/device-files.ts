/**
 * What the image builder puts into a device's root filesystem, as a RootEntry plan (pure):
 * the agent (Bun binary, or Node bundle + wrapper), its config, the default policy, a one-time
 * pairing token (0600 in a 0700 state dir, root-owned), the systemd unit and its enable symlink,
 * the USB gadget script and unit, kernel modules, the board's hardware description, the hostname
 * and the gadget's network address. Paths and texts are here so tests can check them.
 */
import type { BoardProfile } from "../hw/boards.ts";
import { type GadgetSpec, gadgetShellScript } from "../hw/usb-gadget.ts";
import { dir, file, type RootEntry, symlink } from "./rootfs.ts";

export const PATHS = {
  agent: "/usr/local/bin/qubes-air-agent",
  libDir: "/usr/local/lib/qubes-air",
  bundle: "/usr/local/lib/qubes-air/qubes-air-agent.mjs",
  nodePrefix: "/opt/qubes-air/node",
  configDir: "/etc/qubes-air",
  config: "/etc/qubes-air/agent.json",
  hardware: "/etc/qubes-air/hardware.json",
  policyDir: "/etc/qubes-air/policy.d",
  policy: "/etc/qubes-air/policy.d/50-qubes-air.policy",
  stateDir: "/var/lib/qubes-air",
  token: "/var/lib/qubes-air/pairing-token",
  unit: "/etc/systemd/system/qubes-air-agent.service",
  gadgetUnit: "/etc/systemd/system/qubes-air-gadget.service",
  gadgetScript: "/usr/local/lib/qubes-air/usb-gadget.sh",
  gadgetStart: "/usr/local/lib/qubes-air/usb-gadget-start.sh",
  wants: "/etc/systemd/system/multi-user.target.wants",
  modules: "/etc/modules-load.d/qubes-air.conf",
  nmConnection: "/etc/NetworkManager/system-connections/qubes-air-usb0.nmconnection",
  ifupdown: "/etc/network/interfaces.d/qubes-air-usb0",
} as const;

export const AGENT_UNIT_NAME = "qubes-air-agent.service";
export const GADGET_UNIT_NAME = "qubes-air-gadget.service";

export interface DeviceSetup {
  readonly board: BoardProfile;
  readonly name: string;
  /** The agent's listen section: tty and/or tcp. */
  readonly listen: { readonly tty?: string; readonly tcp?: string };
  readonly token: string;
  readonly gadget: GadgetSpec | null;
  readonly runtime:
    | { readonly kind: "bun"; readonly binary: string }
    | {
        readonly kind: "node";
        readonly bundle: string;
        readonly node: readonly RootEntry[];
        /** Node options for the wrapper (node-runtime.ts nodeFlagsFor). */
        readonly flags: readonly string[];
      };
  readonly policy: string;
  /** Configure the gadget's network interface (usb0) with this IPv4 address/prefix. */
  readonly usbAddress: {
    readonly address: string;
    readonly prefix: number;
    readonly via: "nm" | "ifupdown";
  } | null;
}

export function agentConfig(s: DeviceSetup): Record<string, unknown> {
  return {
    name: s.name,
    listen: { ...s.listen },
    stateDir: PATHS.stateDir,
    policyDir: PATHS.policyDir,
  };
}

export function agentUnit(gadget: boolean): string {
  return `# qubes-air agent: makes this device a Qubes remote qube (written by qubes-air image build)
[Unit]
Description=qubes-air agent
After=network.target${gadget ? ` ${GADGET_UNIT_NAME}` : ""}
${gadget ? `Wants=${GADGET_UNIT_NAME}\n` : ""}
[Service]
Type=simple
ExecStart=${PATHS.agent} run --config ${PATHS.config}
Restart=always
RestartSec=2
UMask=0077
# One line per event on stderr: journalctl -u qubes-air-agent
StandardError=journal

[Install]
WantedBy=multi-user.target
`;
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

/**
 * Debian's armhf Node with its libraries in a private prefix, started through the dynamic loader
 * with --library-path, so LD_LIBRARY_PATH never reaches the services the agent runs.
 */
export function nodeWrapper(flags: readonly string[] = []): string {
  const p = PATHS.nodePrefix;
  const node = [`${p}/bin/node`, ...flags, PATHS.bundle].join(" ");
  return `#!/bin/sh
# qubes-air agent on Debian's armhf Node (extracted into ${p} by qubes-air image build).
exec /lib/ld-linux-armhf.so.3 --library-path ${p}/lib ${node} "$@"
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
  const plan: RootEntry[] = [dir(PATHS.libDir), dir(PATHS.configDir), dir(PATHS.policyDir)];
  if (s.runtime.kind === "bun") plan.push(file(PATHS.agent, 0o755, { file: s.runtime.binary }));
  else {
    plan.push(...s.runtime.node);
    plan.push(
      file(PATHS.bundle, 0o644, { file: s.runtime.bundle }),
      file(PATHS.agent, 0o755, nodeWrapper(s.runtime.flags)),
    );
  }
  plan.push(
    file(PATHS.config, 0o644, json(agentConfig(s))),
    file(PATHS.hardware, 0o644, json(hardwareDescription(s))),
    file(PATHS.policy, 0o644, s.policy),
    dir(PATHS.stateDir, 0o700),
    file(PATHS.token, 0o600, `${s.token}\n`),
    file(PATHS.unit, 0o644, agentUnit(s.gadget !== null)),
    symlink(`${PATHS.wants}/${AGENT_UNIT_NAME}`, PATHS.unit),
  );
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
