/**
 * `qubes-air image build` for Raspberry Pi boards on synthetic Raspberry Pi OS-like images (real
 * sfdisk, mkfs.vfat, mkfs.ext4), run as an unprivileged user: the agent package and the
 * first-boot unit that installs it, the device's config, token, gadget and first-boot files land
 * with the right modes and owners, none of the package's own files is laid out by the image, the
 * filesystems stay clean, the base image is never modified, and the failures say how to fix them.
 * (The first-boot install itself runs for real in image-first-boot.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../agent/config.ts";
import { PATHS } from "../../images/device-files.ts";
import { INSTALL, installScript } from "../../images/first-boot-install.ts";
import { AGENT_PATHS, AGENT_UNIT, agent as agentSpec } from "../../packaging/layout.ts";
import {
  agentDeb,
  catIn,
  dumpFrom,
  fatRead,
  fsckClean,
  openDir,
  removeDirs,
  runImageCli,
  sha256,
  statIn,
} from "../fixtures/images/helpers.ts";
import { makePiBase, missingTools, PI_BOOT_START, PI_ROOT_START } from "../fixtures/images/make-base.ts";
import { lacking } from "../helpers/requires.ts";

const missing = missingTools();
const ROOT_OFF = PI_ROOT_START * 512;
const BOOT_OFF = PI_BOOT_START * 512;
let dir = "";
let agent = "";
const bases: Record<string, { path: string; sha: string }> = {};

beforeAll(() => {
  if (missing.length > 0) return;
  dir = openDir("qa-image-pi-");
  agent = agentDeb("arm64");
  for (const r of ["bookworm", "trixie"] as const) {
    const path = makePiBase(dir, r);
    bases[r] = { path, sha: sha256(path) };
  }
}, 120_000);
afterAll(removeDirs);

/** sha256 of a file inside the image (dumped into `into`). */
function sha256Of(img: string, offset: number, path: string, into: string): string {
  const to = join(into, "dumped");
  dumpFrom(img, offset, path, to);
  const sum = sha256(to);
  rmSync(to, { force: true });
  return sum;
}

const why =
  missing.length > 0
    ? `missing tools ${missing.join(", ")} (apt install fdisk dosfstools mtools e2fsprogs)`
    : "";

describe.skipIf(lacking(missing.length > 0 ? missing.join(", ") : null))(
  `image build: Raspberry Pi${why}`,
  () => {
    test("bookworm pi4: agent, config, token, units, gadget, userconf, as nobody", () => {
      const out = join(dir, "pi4.img");
      const r = runImageCli(
        [
          "build",
          "--board",
          "pi4",
          "--base",
          bases.bookworm!.path,
          "--sha256",
          bases.bookworm!.sha,
          "--out",
          out,
          "--name",
          "pi-gpg",
          "--agent",
          agent,
          "--tcp",
          "10.0.0.1:7441",
          "--password-hash",
          "$6$saltsalt$abcdefghijklmnopqrstuv",
        ],
        dir,
      );
      expect(r.stderr).not.toContain("error");
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/\[6\/6\] checking the result/);
      expect(r.stderr).toMatch(/copying .* 100%/);
      const token = /pairing token[^\n]*\n {2}([0-9a-f]{64})\n/.exec(r.stdout)![1]!;
      expect(r.stdout).toContain(`qubes-air pair pi-gpg --serial /dev/qubes-air/pi-gpg --usb-serial QA-`);
      expect(r.stdout).toContain(`--token ${token}`);
      expect(r.stdout).toContain("▀"); // the QR code

      // The image: 0600 (it holds the token), owned by the unprivileged builder; the base untouched.
      expect(statSync(out).mode & 0o777).toBe(0o600);
      if (process.getuid?.() === 0) expect(statSync(out).uid).toBe(65534);
      expect(sha256(bases.bookworm!.path)).toBe(bases.bookworm!.sha);
      expect(existsSync(`${out}.partial`)).toBe(false);

      const deb = `${INSTALL.dir}/${agent.split("/").pop()}`;
      const want: [string, string, number][] = [
        [INSTALL.dir, "directory", 0o700],
        [deb, "regular", 0o644],
        [INSTALL.script, "regular", 0o755],
        [INSTALL.unit, "regular", 0o644],
        [`${PATHS.wants}/${INSTALL.unitName}`, "symlink", 0o777],
        [PATHS.config, "regular", 0o644],
        [PATHS.stateDir, "directory", 0o700],
        [PATHS.token, "regular", 0o600],
        [PATHS.gadgetScript, "regular", 0o755],
        [PATHS.gadgetStart, "regular", 0o755],
        [PATHS.nmConnection, "regular", 0o600],
        [`${PATHS.wants}/qubes-air-gadget.service`, "symlink", 0o777],
        ["/etc/systemd/system/serial-getty@ttyGS0.service", "symlink", 0o777],
      ];
      for (const [path, type, mode] of want) {
        const st = statIn(out, ROOT_OFF, path);
        expect({
          path,
          type: st?.type as string | undefined,
          mode: st?.mode,
          uid: st?.uid,
          gid: st?.gid,
        }).toEqual({
          path,
          type,
          mode,
          uid: 0,
          gid: 0,
        });
      }
      // The package, byte for byte, and the script that installs it at first boot.
      expect(sha256Of(out, ROOT_OFF, deb, dir)).toBe(sha256(agent));
      expect(catIn(out, ROOT_OFF, INSTALL.script)).toBe(installScript(agent.split("/").pop()!));
      expect(statIn(out, ROOT_OFF, `${PATHS.wants}/${INSTALL.unitName}`)!.linkTarget).toBe(INSTALL.unit);
      // The package's own files (binary, unit, policy) are the package's to install, not the
      // image's: only its conffile agent.json is there ahead of it, with the device's settings.
      for (const e of agentSpec("arm64").entries.filter((e) => e.path !== AGENT_PATHS.config)) {
        expect({ path: e.path, stat: statIn(out, ROOT_OFF, e.path) }).toEqual({ path: e.path, stat: null });
      }
      expect(statIn(out, ROOT_OFF, `${PATHS.wants}/${AGENT_UNIT}`)).toBeNull();
      expect(statIn(out, ROOT_OFF, "/etc/systemd/system/serial-getty@ttyGS0.service")!.linkTarget).toBe(
        "/dev/null",
      );
      expect(catIn(out, ROOT_OFF, PATHS.token)).toBe(`${token}\n`);
      const config = JSON.parse(catIn(out, ROOT_OFF, PATHS.config));
      expect(config).toEqual({
        name: "pi-gpg",
        listen: { tty: "/dev/ttyGS0", tcp: "10.0.0.1:7441" },
        stateDir: PATHS.stateDir,
        policyDir: PATHS.policyDir,
      });
      expect(() => parseConfig(config, "agent.json")).not.toThrow();
      expect(catIn(out, ROOT_OFF, PATHS.modules)).toBe("# qubes-air USB gadget\ndwc2\nlibcomposite\n");
      expect(catIn(out, ROOT_OFF, PATHS.nmConnection)).toContain("address1=10.0.0.1/24");
      const serial = /--usb-serial (QA-[0-9A-F]{16})/.exec(r.stdout)![1]!;
      expect(catIn(out, ROOT_OFF, PATHS.gadgetScript)).toContain(`'${serial}'`);
      expect(catIn(out, ROOT_OFF, "/etc/hostname")).toBe("pi-gpg\n");
      expect(catIn(out, ROOT_OFF, "/etc/hosts")).toContain("127.0.1.1\tpi-gpg");
      expect(JSON.parse(catIn(out, ROOT_OFF, PATHS.hardware)).button).toEqual({
        chipLabel: "pinctrl-bcm2711",
        line: "GPIO17",
        activeLow: true,
      });

      // Boot partition: our config.txt block, userconf.txt; never the token.
      const configTxt = fatRead(out, BOOT_OFF, "config.txt")!;
      expect(configTxt).toContain("dtparam=audio=on");
      expect(configTxt).toMatch(
        /# qubes-air begin[^\n]*\n\[all\]\ndtoverlay=dwc2,dr_mode=peripheral\n# qubes-air end\n$/,
      );
      expect(fatRead(out, BOOT_OFF, "userconf.txt")).toBe("qubes:$6$saltsalt$abcdefghijklmnopqrstuv\n");
      expect(fatRead(out, BOOT_OFF, "user-data")).toBeNull();
      expect(fatRead(out, BOOT_OFF, "cmdline.txt")).toContain("rootwait");

      expect(fsckClean(out, ROOT_OFF).clean).toBe(true);
      const fat = join(dir, "boot.vfat");
      execFileSync("dd", [
        `if=${out}`,
        `of=${fat}`,
        "bs=512",
        `skip=${PI_BOOT_START}`,
        "count=131072",
        "status=none",
      ]);
      expect(
        execFileSync("fsck.vfat", ["-n", fat], { env: { PATH: "/usr/sbin:/sbin:/usr/bin:/bin" } }).toString(),
      ).toContain("files");
      const rules = readFileSync(`${out}.udev.rules`, "utf8");
      expect(rules).toContain(`ATTRS{serial}=="${serial}", SYMLINK+="qubes-air/pi-gpg"`);
    }, 60_000);

    test("trixie zero2w: cloud-init user-data and meta-data; serial only; rebuilding replaces the block", () => {
      const out = join(dir, "zero.img");
      const r = runImageCli(
        [
          "build",
          "--board",
          "zero2w",
          "--base",
          bases.trixie!.path,
          "--out",
          out,
          "--name",
          "zero.gpg",
          "--agent",
          agent,
          "--no-qr",
        ],
        dir,
      );
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain("▀");
      expect(r.stderr).toContain("first boot: cloud-init");
      const userData = fatRead(out, BOOT_OFF, "user-data")!;
      expect(userData).toStartWith("#cloud-config\n");
      expect(userData).toContain('hostname: "zero-gpg"');
      expect(userData).not.toContain("users:"); // no password, no keys: Raspberry Pi OS's own first boot
      expect(fatRead(out, BOOT_OFF, "meta-data")).toMatch(
        /^instance-id: "qubes-air-[0-9a-f]{16}"\nlocal-hostname: "zero-gpg"\n$/,
      );
      expect(JSON.parse(catIn(out, ROOT_OFF, PATHS.config)).listen).toEqual({ tty: "/dev/ttyGS0" });
      expect(statIn(out, ROOT_OFF, PATHS.nmConnection)).toBeNull();
      expect(catIn(out, ROOT_OFF, "/etc/hostname")).toBe("raspberrypi\n"); // cloud-init sets it

      // Building again from the built image: one block in config.txt, files replaced, fs clean.
      const again = join(dir, "zero2.img");
      const r2 = runImageCli(
        ["build", "--board", "zero2w", "--base", out, "--out", again, "--agent", agent, "--no-qr"],
        dir,
      );
      expect(r2.code).toBe(0);
      expect(fatRead(again, BOOT_OFF, "config.txt")!.match(/qubes-air begin/g)?.length).toBe(1);
      expect(fsckClean(again, ROOT_OFF).clean).toBe(true);
    }, 60_000);

    test("pi3: --tcp required, no gadget; --ssh-key on bookworm: key-only SSH and the ssh switch", () => {
      const r = runImageCli(
        ["build", "--board", "pi3", "--base", bases.bookworm!.path, "--out", join(dir, "pi3.img")],
        dir,
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("has no USB device port: give --tcp 0.0.0.0:7441");
      const key = join(dir, "k.pub");
      writeFileSync(key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA me\n");
      const pi3 = `--board pi3 --base ${bases.bookworm!.path} --out ${join(dir, "pi3.img")} --tcp 0.0.0.0:7441`;
      const hash = "$6$saltsalt$abcdefghijklmnopqrstuv";
      const ok = runImageCli(
        ["build", ...pi3.split(" "), "--agent", agent, "--ssh-key", key, "--password-hash", hash],
        dir,
      );
      expect(ok.code).toBe(0);
      expect(fatRead(join(dir, "pi3.img"), BOOT_OFF, "ssh")).toBe("");
      expect(catIn(join(dir, "pi3.img"), ROOT_OFF, "/etc/ssh/qubes-air-authorized_keys/qubes")).toContain(
        "ssh-ed25519 AAAA",
      );
      expect(statIn(join(dir, "pi3.img"), ROOT_OFF, `${PATHS.wants}/ssh.service`)?.linkTarget).toBe(
        "/usr/lib/systemd/system/ssh.service",
      );
      expect(ok.stdout).toContain("--tcp DEVICE-ADDRESS:7441 --zone lan --token ");
      expect(statIn(join(dir, "pi3.img"), ROOT_OFF, PATHS.gadgetUnit)).toBeNull();
      expect(existsSync(join(dir, "pi3.img.udev.rules"))).toBe(false);
    }, 60_000);

    test("refusals: wrong sha256, existing output, compressed base, missing tools, no room, bad options", () => {
      const base = bases.bookworm!.path;
      const cases: [string[], number, RegExp][] = [
        [
          ["--sha256", "0".repeat(64), "--out", "x.img"],
          1,
          /has sha256 [0-9a-f]{64}, not the expected 0{64}/,
        ],
        [["--out", join(dir, "pi4.img")], 1, /exists: choose another --out, or add --force/],
        [["--out", "x.img", "--name", "9bad"], 2, /--name must be a qube name/],
        [["--out", "x.img", "--tcp", "nope"], 2, /--tcp must be ADDR:PORT/],
        [["--out", "x.img", "--password-hash", "secret"], 2, /crypt\(3\) hash/],
        [
          ["--out", "x.img", "--agent", base],
          1,
          /is not the arm64 agent package: give qubes-air-agent_VERSION_arm64\.deb/,
        ],
        [
          ["--out", "x.img", "--agent", agentDeb("amd64")],
          1,
          /is not the arm64 agent package.*\(it is qubes-air-agent for amd64\)/,
        ],
      ];
      for (const [extra, code, re] of cases) {
        const r = runImageCli(["build", "--board", "pi4", "--base", base, "--agent", agent, ...extra], dir);
        expect({ extra, code: r.code }).toEqual({ extra, code });
        expect(r.stderr).toMatch(re);
      }
      expect(existsSync(join(dir, "x.img"))).toBe(false);
      expect(existsSync(join(dir, "x.img.partial"))).toBe(false);
      writeFileSync(join(dir, "b.img.xz"), "x");
      expect(
        runImageCli(
          ["build", "--board", "pi4", "--base", join(dir, "b.img.xz"), "--out", "y.img", "--agent", agent],
          dir,
        ).stderr,
      ).toContain("is compressed: unpack it first");
      const noTools = runImageCli(
        ["build", "--board", "pi4", "--base", base, "--out", "y.img", "--agent", agent],
        dir,
        { PATH: "/nonexistent" },
      );
      expect(noTools.code).toBe(1);
      expect(noTools.stderr).toMatch(/missing tools: .*mtype.*Install with: sudo apt-get install .*mtools/);
      const small = makePiBase(openDir("qa-image-small-"), "bookworm", 60);
      const full = runImageCli(
        ["build", "--board", "pi4", "--base", small, "--out", join(dir, "small.img"), "--agent", agent],
        dir,
      );
      expect(full.code).toBe(1);
      expect(full.stderr).toMatch(/the root filesystem has .* free but the agent needs/);
      expect(existsSync(join(dir, "small.img"))).toBe(false);
    }, 60_000);
  },
);
