/**
 * `qubes-air image build --board armory-mk2` on a synthetic USB armory image (MBR, 5 MiB of
 * known bytes standing for U-Boot, one ext4 partition), run as an unprivileged user: the armhf
 * agent package and Debian's armhf Node .debs it depends on, installed together by the first-boot
 * unit, the device's config and token, gadget, g_ether replaced, SSH off (or key-only with
 * --ssh-key), the U-Boot area byte-identical, fs clean.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ARMORY_MODPROBE } from "../../images/board-edits.ts";
import { hashRange } from "../../images/copy.ts";
import { PATHS } from "../../images/device-files.ts";
import { INSTALL, runtimeDebName } from "../../images/first-boot-install.ts";
import { AGENT_PATHS } from "../../packaging/layout.ts";
import {
  agentDeb,
  catIn,
  fsckClean,
  nodeDebs,
  openDir,
  removeDirs,
  runImageCli,
  statIn,
} from "../fixtures/images/helpers.ts";
import {
  ARMORY_ROOT_OFFSET,
  bootPattern,
  makeArmoryBase,
  missingTools,
} from "../fixtures/images/make-base.ts";
import { lacking } from "../helpers/requires.ts";

const missing = missingTools();
const debs = missing.length > 0 ? { skip: "no tools" } : nodeDebs();
const skip = missing.length > 0 ? `missing tools ${missing.join(", ")}` : "skip" in debs ? debs.skip : "";
const OFF = ARMORY_ROOT_OFFSET;
let dir = "";
let bundle = "";
let base = "";

beforeAll(() => {
  if (skip) return;
  dir = openDir("qa-image-armory-");
  bundle = agentDeb("armhf");
  base = makeArmoryBase(dir);
}, 120_000);
afterAll(removeDirs);

function readBytes(path: string, start: number, end: number): Buffer {
  return readFileSync(path).subarray(start, end);
}

describe.skipIf(lacking(missing.length > 0 ? skip : null) || skip !== "")(
  `image build: USB armory ${skip}`,
  () => {
    test("agent on Debian's Node, gadget instead of g_ether, SSH off, U-Boot untouched", () => {
      const out = join(dir, "armory.img");
      const baseHash = hashRange(base, 0, statSync(base).size);
      const r = runImageCli(
        [
          "build",
          "--board",
          "armory-mk2",
          "--base",
          base,
          "--out",
          out,
          "--name",
          "armory-gpg",
          "--agent",
          bundle,
          "--node-debs",
          (debs as { dir: string }).dir,
          "--tcp",
          "10.0.0.1:7441",
          "--no-qr",
        ],
        dir,
      );
      expect(r.stderr).not.toContain("internal error");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/package [\d.]+ on Debian's armhf Node \d+\.\d+[^\n]*installed at first boot/);
      expect(r.stdout).toContain("SSH is off");
      // The stand-in image is Debian 13, the cached Node .debs Debian 12: said, not hidden.
      if (/~deb12u/.test(r.stdout))
        expect(r.stdout).toContain("the Node .debs are from Debian 12 but the image is Debian 13");
      expect(r.stderr).toMatch(/the first 5\.0 MiB \(MBR, U-Boot\) unchanged/);

      // Bytes 512..5 MiB are exactly the pattern; the base is unchanged.
      expect(readBytes(out, 512, OFF).equals(bootPattern(OFF - 512))).toBe(true);
      expect(hashRange(base, 0, statSync(base).size)).toBe(baseHash);

      for (const [path, type, mode] of [
        [`${INSTALL.dir}/${bundle.split("/").pop()}`, "regular", 0o644],
        [INSTALL.runtimeDir, "directory", 0o700],
        [INSTALL.script, "regular", 0o755],
        [`${PATHS.wants}/${INSTALL.unitName}`, "symlink", 0o777],
        [PATHS.token, "regular", 0o600],
        [PATHS.stateDir, "directory", 0o700],
        [`${PATHS.wants}/qubes-air-gadget.service`, "symlink", 0o777],
        [ARMORY_MODPROBE, "regular", 0o644],
        ["/etc/ssh/sshd_not_to_be_run", "regular", 0o644],
      ] as const) {
        const st = statIn(out, OFF, path);
        expect({ path, type: st?.type, mode: st?.mode, uid: st?.uid, gid: st?.gid }).toEqual({
          path,
          type,
          mode,
          uid: 0,
          gid: 0,
        });
      }
      // Every Node .deb given, as it is, beside the package; nothing of Node or the agent unpacked.
      const debNames = readdirSync((debs as { dir: string }).dir).filter((n) => n.endsWith(".deb"));
      expect(debNames.some((n) => n.startsWith("nodejs_"))).toBe(true);
      for (const n of debNames) {
        expect(statIn(out, OFF, `${INSTALL.runtimeDir}/${runtimeDebName(n)}`)?.size).toBe(
          statSync(join((debs as { dir: string }).dir, n)).size,
        );
      }
      expect(statIn(out, OFF, AGENT_PATHS.bin)).toBeNull();
      expect(statIn(out, OFF, AGENT_PATHS.bundle)).toBeNull();
      expect(statIn(out, OFF, "/usr/bin/node")).toBeNull();
      expect(catIn(out, OFF, "/etc/modules")).toMatch(
        /^# g_ether {2}# \(qubes-air: replaced by its own gadget\)$/m,
      );
      expect(catIn(out, OFF, "/etc/modules")).toMatch(/^ci_hdrc_imx$/m);
      expect(catIn(out, OFF, ARMORY_MODPROBE)).toContain("blacklist g_ether");
      expect(catIn(out, OFF, PATHS.modules)).toBe("# qubes-air USB gadget\nlibcomposite\n");
      // usb0 already has 10.0.0.1 in the image: nothing added for it.
      expect(statIn(out, OFF, PATHS.ifupdown)).toBeNull();
      expect(catIn(out, OFF, "/etc/hostname")).toBe("armory-gpg\n");
      expect(JSON.parse(catIn(out, OFF, PATHS.hardware))).toMatchObject({
        board: "armory-mk2",
        button: null,
        approvalAlternative: "console",
      });
      expect(fsckClean(out, OFF).clean).toBe(true);
    }, 60_000);

    test("--ssh-key: key-only SSH, enabled; another usb0 address is refused", () => {
      const key = join(dir, "id.pub");
      writeFileSync(
        key,
        "# mine\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0 me@work\n",
      );
      const out = join(dir, "armory-ssh.img");
      const args = [
        "build",
        "--board",
        "armory-mk2",
        "--base",
        base,
        "--agent",
        bundle,
        "--node-debs",
        (debs as { dir: string }).dir,
        "--no-qr",
      ];
      const r = runImageCli([...args, "--out", out, "--ssh-key", key], dir);
      expect(r.code).toBe(0);
      expect(statIn(out, OFF, "/etc/ssh/sshd_not_to_be_run")).toBeNull();
      expect(catIn(out, OFF, "/etc/ssh/qubes-air-authorized_keys/usbarmory")).toBe(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0 me@work\n",
      );
      expect(catIn(out, OFF, "/etc/ssh/sshd_config.d/qubes-air.conf")).toContain("PasswordAuthentication no");
      expect(statIn(out, OFF, `${PATHS.wants}/ssh.service`)?.linkTarget).toBe(
        "/usr/lib/systemd/system/ssh.service",
      );

      const other = runImageCli([...args, "--out", join(dir, "other.img"), "--tcp", "10.9.9.1:7441"], dir);
      expect(other.code).toBe(1);
      expect(other.stderr).toContain(
        "already gives usb0 the address 10.0.0.1 in /etc/network/interfaces: use --tcp 10.0.0.1:7441",
      );
      writeFileSync(join(dir, "priv"), "-----BEGIN OPENSSH PRIVATE KEY-----\n");
      expect(
        runImageCli([...args, "--out", join(dir, "p.img"), "--ssh-key", join(dir, "priv")], dir).stderr,
      ).toContain("is not an SSH public key");
    }, 60_000);
  },
);
