/**
 * What `image build` tells the user at the end (pure texts): a summary of the image, the one-time
 * pairing token as text and QR code, and the `qubes-air pair` command to run in sys-remote after
 * the device's first boot. The host's registry cannot hold a device before pairing (an entry
 * pins the agent's key, which the device makes on first boot), so the token goes to the user,
 * who gives it to `qubes-air pair`; the daemon then pins the key on that first connection.
 */
import { formatBytes } from "./common.ts";
import { encodeQr, renderQr } from "./qr.ts";

export interface BuildSummary {
  readonly out: string;
  readonly outSize: number;
  readonly boardName: string;
  readonly name: string;
  readonly release: string;
  readonly firstBoot: string;
  readonly agent: {
    readonly file: string;
    readonly size: number;
    readonly sha256: string;
    readonly runtime: string;
  };
  readonly listen: { readonly tty?: string; readonly tcp?: string };
  readonly usb: { readonly serial: string; readonly hostMac: string; readonly devMac: string } | null;
  readonly token: string;
  readonly udevRules: string | null;
  readonly notes: readonly string[];
  readonly seconds: number;
}

export function pairCommand(s: Pick<BuildSummary, "name" | "listen" | "usb" | "token">): string {
  const parts = ["qubes-air", "pair", s.name];
  if (s.listen.tty && s.usb) {
    parts.push("--serial", `/dev/qubes-air/${s.name}`, "--usb-serial", s.usb.serial);
  } else if (s.listen.tcp) {
    const host = s.listen.tcp.replace(/^(0\.0\.0\.0|\[::\]):/, "DEVICE-ADDRESS:");
    parts.push("--tcp", host);
    if (s.usb) parts.push("--mac", s.usb.hostMac);
  }
  parts.push("--zone", s.usb ? "usb" : "lan", "--token", s.token);
  return parts.join(" ");
}

export function summaryText(s: BuildSummary, qr: boolean): string {
  const listens = [
    s.listen.tty ? `${s.listen.tty} (USB serial)` : null,
    s.listen.tcp ? `${s.listen.tcp} (TCP)` : null,
  ].filter(Boolean);
  const lines = [
    `Built ${s.out} in ${s.seconds.toFixed(1)} s: ${s.boardName}, device "${s.name}"`,
    `  base       ${s.release}; first boot: ${s.firstBoot}`,
    `  agent      ${s.agent.file} (${formatBytes(s.agent.size)}, sha256 ${s.agent.sha256.slice(0, 16)}…), ${s.agent.runtime}`,
    `  listens    ${listens.join(" and ")}`,
  ];
  if (s.usb) {
    lines.push(
      `  USB        serial ${s.usb.serial}, MAC host end ${s.usb.hostMac}, device end ${s.usb.devMac}`,
    );
  }
  lines.push(`  image      ${formatBytes(s.outSize)}, mode 0600 (it holds the pairing token)`);
  for (const n of s.notes) lines.push(`  note       ${n}`);
  lines.push(
    "",
    "One-time pairing token (secret until the device is paired; then it is useless):",
    `  ${s.token}`,
  );
  if (qr) lines.push("", renderQr(encodeQr(s.token, { ec: "M" })).trimEnd());
  lines.push("", "After the device's first boot, pair it from sys-remote:", `  ${pairCommand(s)}`);
  if (s.udevRules) {
    lines.push(
      `udev rules for sys-remote (stable /dev/qubes-air/${s.name}): ${s.udevRules}`,
      `  install as /etc/udev/rules.d/99-qubes-air.rules, then: udevadm control --reload && udevadm trigger`,
    );
  }
  lines.push("", `Write it to a card: qubes-air flash ${s.out} /dev/sdX`);
  return `${lines.join("\n")}\n`;
}
