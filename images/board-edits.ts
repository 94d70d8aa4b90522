/**
 * Edits that depend on what the base image already contains (pure: the caller reads the files):
 *  - the USB armory Debian image loads the g_ether gadget at boot, which would hold the USB
 *    device controller: it is blacklisted and commented out of /etc/modules, so our ACM+ECM
 *    gadget can bind (its usb0 keeps the image's 10.0.0.1 configuration);
 *  - that image also runs sshd with the published password usbarmory/usbarmory: sshd is turned
 *    off (/etc/ssh/sshd_not_to_be_run) unless SSH keys are given;
 *  - with --ssh-key: key-only SSH for one user, keys kept in /etc/ssh (no home directory needed).
 */
import { ImageError } from "./common.ts";
import { sshdDropIn } from "./first-boot.ts";
import { file, type RootEntry, remove, symlink } from "./rootfs.ts";

export const ARMORY_MODPROBE = "/etc/modprobe.d/qubes-air.conf";

export function armoryGadgetEdits(modules: string | null): RootEntry[] {
  const plan: RootEntry[] = [
    file(
      ARMORY_MODPROBE,
      0o644,
      "# qubes-air: its own USB gadget (serial + network) replaces g_ether\nblacklist g_ether\n",
    ),
  ];
  if (modules !== null && /^\s*g_ether\b/m.test(modules)) {
    const edited = modules
      .split("\n")
      .map((l) => (/^\s*g_ether\b/.test(l) ? `# ${l}  # (qubes-air: replaced by its own gadget)` : l))
      .join("\n");
    plan.push(file("/etc/modules", 0o644, edited));
  }
  return plan;
}

/** The address the image already gives usb0 in /etc/network/interfaces, if any. */
export function ifupdownUsb0Address(interfaces: string | null): string | null {
  if (interfaces === null) return null;
  const m = /^iface\s+usb0\s+inet\s+static\s*\n((?:[ \t]+.*\n?)*)/m.exec(interfaces);
  if (!m) return null;
  const a = /^\s+address\s+([0-9.]+)/m.exec(m[1]!);
  return a ? a[1]! : "";
}

export function sshOffPlan(): RootEntry[] {
  return [
    file(
      "/etc/ssh/sshd_not_to_be_run",
      0o644,
      "qubes-air: SSH is off on this device (the image's default password is public).\n" +
        "Rebuild the image with --ssh-key FILE for key-only SSH.\n",
    ),
  ];
}

export const SSH_KEYS_DIR = "/etc/ssh/qubes-air-authorized_keys";

/** Public key lines from a file (comments and blank lines dropped); at least one is required. */
export function parseSshKeys(text: string, source: string): string[] {
  const keys = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (keys.length === 0) throw new ImageError(`${source} holds no SSH public key`);
  for (const k of keys) {
    if (
      !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/.test(
        k,
      )
    ) {
      throw new ImageError(`${source}: "${k.slice(0, 30)}…" is not an SSH public key (give the .pub file)`);
    }
    if (/PRIVATE KEY/.test(k)) throw new ImageError(`${source} is a private key: give the .pub file`);
  }
  return keys;
}

/** Key-only SSH for `user`, enabled at boot. `sshUnit` is where the image has ssh.service. */
export function sshKeysPlan(user: string, keys: readonly string[], sshUnit: string): RootEntry[] {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw new ImageError(`bad user name ${user}`);
  return [
    file("/etc/ssh/sshd_config.d/qubes-air.conf", 0o644, sshdDropIn()),
    file(`${SSH_KEYS_DIR}/${user}`, 0o644, `${keys.join("\n")}\n`),
    symlink("/etc/systemd/system/multi-user.target.wants/ssh.service", sshUnit),
    remove("/etc/ssh/sshd_not_to_be_run"),
  ];
}
