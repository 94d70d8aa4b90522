/**
 * First-boot setup in the mechanism the image itself uses, and the Pi's config.txt (pure texts):
 *  - Raspberry Pi OS trixie and later: cloud-init (`user-data`, `meta-data` on bootfs);
 *  - Raspberry Pi OS bookworm and earlier: `userconf.txt` on bootfs (and the hostname written
 *    straight into the root filesystem);
 *  - config.txt: our block between markers (dtoverlay=dwc2,dr_mode=peripheral), replacing an
 *    earlier one, with any other dwc2 overlay line commented out.
 * Secrets never go to bootfs: FAT has no permissions. The token lives in the rootfs (0600).
 */
import { toYaml, type YamlValue } from "./yaml.ts";

export type FirstBootKind = "cloud-init" | "userconf";

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2]!;
    if (/^".*"$/.test(v) || /^'.*'$/.test(v)) v = v.slice(1, -1).replace(/\\(.)/g, "$1");
    out[m[1]!] = v;
  }
  return out;
}

const OLD_RELEASES = new Set(["buster", "bullseye", "bookworm"]);

/**
 * cloud-init when bootfs carries its seed files or the rootfs has cloud-init, or the release is
 * newer than bookworm; userconf.txt otherwise.
 */
export function detectFirstBoot(
  bootNames: readonly string[],
  osRelease: Record<string, string>,
  rootHasCloudInit: boolean,
): { kind: FirstBootKind; why: string } {
  const lower = bootNames.map((n) => n.toLowerCase());
  const seed = ["user-data", "meta-data", "network-config"].find((n) => lower.includes(n));
  if (seed) return { kind: "cloud-init", why: `bootfs has ${seed}` };
  if (rootHasCloudInit) return { kind: "cloud-init", why: "the root filesystem has /etc/cloud/cloud.cfg" };
  const codename = osRelease.VERSION_CODENAME ?? "";
  if (codename !== "" && !OLD_RELEASES.has(codename)) {
    return { kind: "cloud-init", why: `release ${codename} uses cloud-init` };
  }
  return { kind: "userconf", why: `release ${codename || "unknown"}: userconf.txt` };
}

const BEGIN = "# qubes-air begin (written by qubes-air image build; replaced on rebuild)";
const END = "# qubes-air end";

/** config.txt with our block (at the end, under [all]) replacing an earlier one. */
export function editConfigTxt(existing: string, lines: readonly string[]): string {
  const kept: string[] = [];
  let inBlock = false;
  for (const line of existing.replace(/\r\n/g, "\n").split("\n")) {
    if (line === BEGIN) inBlock = true;
    else if (line === END) inBlock = false;
    else if (!inBlock) kept.push(/^\s*dtoverlay\s*=\s*dwc2\b/.test(line) ? `#${line}  # (qubes-air)` : line);
  }
  while (kept.length > 0 && kept[kept.length - 1] === "") kept.pop();
  if (lines.length === 0) return `${kept.join("\n")}\n`;
  return `${[...kept, "", BEGIN, "[all]", ...lines, END].join("\n")}\n`;
}

export interface UserSpec {
  readonly user: string;
  /** crypt(3) hash (openssl passwd -6), or null: the account is locked. */
  readonly passwordHash: string | null;
  readonly sshKeys: readonly string[];
}

/** cloud-init user-data for a Pi: hostname, the user (when one is asked for), no SSH passwords. */
export function piUserData(hostname: string, u: UserSpec | null): string {
  const doc: Record<string, YamlValue> = { hostname, manage_etc_hosts: true };
  if (u) {
    const user: Record<string, YamlValue> = {
      name: u.user,
      shell: "/bin/bash",
      lock_passwd: u.passwordHash === null,
    };
    if (u.passwordHash !== null) {
      user.hashed_passwd = u.passwordHash;
      user.groups = ["sudo"];
    }
    if (u.sshKeys.length > 0) user.ssh_authorized_keys = [...u.sshKeys];
    doc.users = [user];
  }
  doc.ssh_pwauth = false;
  return toYaml(doc, [
    "#cloud-config",
    `# qubes-air: first boot of ${hostname} (written by qubes-air image build)`,
  ]);
}

export function piMetaData(instanceId: string, hostname: string): string {
  return toYaml({ "instance-id": instanceId, "local-hostname": hostname });
}

/** userconf.txt: `user:hash`; "!" locks the account. */
export function userconfTxt(u: UserSpec): string {
  return `${u.user}:${u.passwordHash ?? "!"}\n`;
}

/** sshd drop-in for key-only logins, keys kept outside home directories (they may not exist yet). */
export function sshdDropIn(): string {
  return `# qubes-air: SSH with keys only (written by qubes-air image build)
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/qubes-air-authorized_keys/%u
`;
}
