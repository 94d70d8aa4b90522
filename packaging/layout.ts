/**
 * What each package holds and where (pure data): the five packages of `bun run package`.
 *   qubes-air-sys-remote  deb amd64 + rpm x86_64: host CLI/daemon, the relay as the executable
 *                         qrexec services, the daemon's system unit (runs only where the qube has
 *                         the `qubes-air` service), udev rules, the supported-service hook
 *   qubes-air-dom0        rpm noarch: the dom0 policy file, the Salt formula (salt/**) if present
 *   qubes-air-agent       deb arm64, armhf (Node bundle), amd64: the agent, its unit, the default
 *                         device policy and config
 * Must never: put anything under /usr/local (packages own /usr and /etc), or ship state: state is
 * made at run time and belongs to the user (daemon: ~user/.local/share/qubes-air; agent:
 * /var/lib/qubes-air).
 */
import { udevRules } from "../hw/udev.ts";
import { GADGET_PRODUCT_ID, GADGET_VENDOR_ID } from "../hw/usb-gadget.ts";

const hex4 = (n: number) => n.toString(16).padStart(4, "0");

/** One file (or symlink) in a package. `from` is a dist/ artefact, a packaging/files path or text. */
export interface Entry {
  readonly path: string;
  readonly mode: number;
  readonly from?: { readonly dist: string } | { readonly files: string } | { readonly text: string };
  /** A symlink to this target instead of a file. */
  readonly link?: string;
  /** Under /etc and meant to be edited: a deb conffile, an rpm %config(noreplace). */
  readonly conf?: boolean;
}

export interface PackageSpec {
  readonly name: string;
  readonly summary: string;
  readonly description: string;
  readonly entries: readonly Entry[];
  /** Directories owned by the package (empty at install), with their modes. */
  readonly dirs: readonly { readonly path: string; readonly mode: number }[];
  readonly depends: readonly string[];
  readonly unit?: { readonly name: string; readonly enable: boolean };
}

export const UNIT = "qubes-air.service";
export const AGENT_UNIT = "qubes-air-agent.service";
export const SERVICE = "qubes-air";
/** What a `bun build --compile` executable links against (glibc; Bun needs 2.27 or newer). */
const LIBC = "libc6 (>= 2.27)";

/** udev: stable names and group access for our gadgets' ttys, and ModemManager kept off them. */
export function udevFile(): string {
  const ours = `ATTRS{idVendor}=="${hex4(GADGET_VENDOR_ID)}", ATTRS{idProduct}=="${hex4(GADGET_PRODUCT_ID)}", ATTRS{serial}=="QA-*"`;
  const generated = udevRules([])
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"));
  return [
    "# qubes-air (package qubes-air-sys-remote): the USB gadgets of qubes-air devices.",
    "# Numbered before ModemManager's rules (77-mm-*), which must see the ignore flag: a modem",
    "# probe writes AT commands into the link and breaks the session.",
    `SUBSYSTEM=="tty", ${ours}, ENV{ID_MM_DEVICE_IGNORE}="1", ENV{ID_MM_PORT_IGNORE}="1"`,
    "# Each device's tty as /dev/qubes-air/<serial>, group qubes (the qube's user).",
    ...generated,
    "",
  ].join("\n");
}

export const UDEV_PATH = "/lib/udev/rules.d/60-qubes-air.rules";

export function sysRemote(format: "deb" | "rpm"): PackageSpec {
  // Debian 12 keeps units and udev rules under /lib (usrmerge aliases), Fedora under /usr/lib.
  const lib = format === "deb" ? "/lib" : "/usr/lib";
  const relay = `${format === "deb" ? "/" : "../../"}usr/lib/qubes-air/qubesair-relay`;
  return {
    name: "qubes-air-sys-remote",
    summary: "Qubes-air for the service qube sys-remote (template package)",
    description: [
      "Links Qubes OS 4.3 RemoteVMs (Raspberry Pi, USB Armory, cloud VMs) to",
      "the system over a Noise-encrypted channel: the qubes-air CLI and daemon,",
      "the qrexec relay services qubesair.NoiseProxy and qubesair.Call, the",
      "daemon's system unit (switched on per qube with",
      "qvm-service --enable sys-remote qubes-air) and udev rules for the devices.",
    ].join("\n"),
    entries: [
      { path: "/usr/bin/qubes-air", mode: 0o755, from: { dist: "qubes-air-linux-x64" } },
      { path: "/usr/lib/qubes-air/qubesair-relay", mode: 0o755, from: { dist: "qubesair-relay-linux-x64" } },
      // Executable services (not socket services): the remote's exit status reaches the caller.
      // Debian policy: absolute across top-level directories; Fedora's rpmlint: relative.
      { path: "/etc/qubes-rpc/qubesair.NoiseProxy", mode: 0o777, link: relay },
      { path: "/etc/qubes-rpc/qubesair.Call", mode: 0o777, link: relay },
      { path: `${lib}/systemd/system/${UNIT}`, mode: 0o644, from: { files: "sys-remote/qubes-air.service" } },
      {
        path: `${lib}/systemd/system-preset/75-qubes-air.preset`,
        mode: 0o644,
        from: { files: "sys-remote/75-qubes-air.preset" },
      },
      {
        path: "/etc/qubes/post-install.d/50-qubes-air.sh",
        mode: 0o755,
        from: { files: "sys-remote/50-qubes-air.sh" },
        // Debian: every file in /etc is a conffile. Fedora: an executable hook is not %config.
        conf: format === "deb",
      },
      { path: UDEV_PATH.replace("/lib", lib), mode: 0o644, from: { text: udevFile() } },
    ],
    dirs: [],
    depends: format === "deb" ? [LIBC] : [],
    unit: { name: UNIT, enable: true },
  };
}

export function dom0(salt: readonly { rel: string; file: string }[]): PackageSpec {
  return {
    name: "qubes-air-dom0",
    summary: "Qubes-air for dom0: qrexec policy and Salt formula",
    description: [
      "The dom0 side of qubes-air: the qrexec policy for calls to remote qubes",
      "(deny by default, with examples), the dom0 service qubesair.RegisterRemote",
      "through which sys-remote registers RemoteVMs relayed by itself, its policy,",
      "and the qubes-air Salt formula",
      "(qubes-air.create, .install, .configure) with its pillar example, under",
      "/srv/formulas/base/qubes-air-formula.",
    ].join("\n"),
    entries: [
      {
        path: "/etc/qubes/policy.d/50-qubes-air.policy",
        mode: 0o644,
        from: { files: "dom0/50-qubes-air.policy" },
        conf: true,
      },
      {
        path: "/etc/qubes/policy.d/45-qubes-air-register.policy",
        mode: 0o644,
        from: { files: "dom0/45-qubes-air-register.policy" },
        conf: true,
      },
      // A dom0 qrexec service (Python, the qubesadmin library): not a config file.
      {
        path: "/etc/qubes-rpc/qubesair.RegisterRemote",
        mode: 0o755,
        from: { files: "dom0/qubesair.RegisterRemote" },
      },
      ...salt.map((s) => ({ path: `${FORMULA_DIR}/${s.rel}`, mode: 0o644, from: { files: s.file } })),
    ],
    dirs: [],
    // qubesair.RegisterRemote imports qubesadmin (qubes-core-admin-client's library, in every dom0).
    depends: ["python3-qubesadmin"],
  };
}

export const FORMULA_DIR = "/srv/formulas/base/qubes-air-formula";

export type AgentArch = "arm64" | "armhf" | "amd64";
export const AGENT_ARCHES: readonly AgentArch[] = ["arm64", "armhf", "amd64"];

export function agent(arch: AgentArch): PackageSpec {
  const runtime: Entry[] =
    arch === "armhf"
      ? [
          {
            path: "/usr/lib/qubes-air/qubes-air-agent.mjs",
            mode: 0o644,
            from: { dist: "qubes-air-agent-node.mjs" },
          },
          { path: "/usr/bin/qubes-air-agent", mode: 0o755, from: { files: "agent/qubes-air-agent-node" } },
        ]
      : [
          {
            path: "/usr/bin/qubes-air-agent",
            mode: 0o755,
            from: { dist: arch === "arm64" ? "qubes-air-agent-linux-arm64" : "qubes-air-agent-linux-x64" },
          },
        ];
  return {
    name: "qubes-air-agent",
    summary: "Qubes-air agent: makes this device a Qubes remote qube",
    description: [
      "The qubes-air agent for a Raspberry Pi, USB Armory or cloud VM: answers",
      "qrexec calls from a Qubes OS 4.3 system over a Noise-encrypted link, under",
      "its own device policy (/etc/qubes-air/policy.d), with physical",
      "confirmation for split-GPG.",
    ].join("\n"),
    entries: [
      ...runtime,
      {
        path: `/lib/systemd/system/${AGENT_UNIT}`,
        mode: 0o644,
        from: { files: "agent/qubes-air-agent.service" },
      },
      { path: "/etc/qubes-air/agent.json", mode: 0o644, from: { files: "agent/agent.json" }, conf: true },
      {
        path: "/etc/qubes-air/policy.d/50-qubes-air.policy",
        mode: 0o644,
        from: { files: "../../core/qrexec/default-policy/50-qubes-air.policy" },
        conf: true,
      },
    ],
    dirs: [{ path: "/var/lib/qubes-air", mode: 0o700 }],
    depends: arch === "armhf" ? ["nodejs (>= 18)"] : [LIBC],
    unit: { name: AGENT_UNIT, enable: false },
  };
}
