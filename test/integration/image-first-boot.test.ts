/**
 * The first boot of a built device, for real, in a Debian 12 root (test/setup/debian12-root.sh)
 * with chroot: the image builder's root-filesystem plan (images/device-files.ts devicePlan, with
 * the amd64 agent package) is laid into the root exactly as the builder lays it into an image,
 * then the first-boot script runs there. Checked: dpkg installs the package without a conffile
 * prompt (stdin is closed: a prompt would fail it) and keeps the device's own agent.json; the
 * files installed are exactly the package's (packaging/layout.ts), nothing else of the agent's is
 * laid out by the image; the unit is enabled, the install unit disabled and its files gone; the
 * token stays 0600 in the 0700 state dir; a runtime package the root already has is not
 * reinstalled (never downgraded), one it lacks is installed; the installed agent runs and accepts
 * the config. The same for a cloud VM: cloud-init's write_files and runcmd from `image cloud`'s
 * user-data, the package fetched over HTTP and checked against its pinned sha256.
 * Needs root (chroot), dpkg-deb, systemctl.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { parseConfig } from "../../agent/config.ts";
import { BOARDS } from "../../hw/boards.ts";
import { CLOUD_DEB, cloudUserData, FETCH_SCRIPT } from "../../images/cloud-files.ts";
import { type DeviceSetup, devicePlan, PATHS } from "../../images/device-files.ts";
import { INSTALL } from "../../images/first-boot-install.ts";
import type { RootEntry } from "../../images/rootfs.ts";
import { AGENT_PATHS, AGENT_UNIT, agent } from "../../packaging/layout.ts";
import { agentDeb, has, openDir, ROOT, removeDirs } from "../fixtures/images/helpers.ts";
import { lacking } from "../helpers/requires.ts";

afterAll(removeDirs);

const why =
  process.getuid?.() !== 0
    ? "root (the first boot runs in a chroot)"
    : ["dpkg-deb", "systemctl", "chroot", "tar"].filter((t) => !has(t)).join(", ") || null;

function ok(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
    input,
    timeout: 300_000,
  });
  const out = `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}`;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}:\n${out}`);
  return out;
}

/** What applyPlan does to an ext4 image, done to a directory (root-owned, the plan's modes). */
function layOut(root: string, plan: readonly RootEntry[]): void {
  for (const e of plan) {
    const full = join(root, e.path);
    if (e.kind === "dir") {
      mkdirSync(full, { recursive: true });
      chmodSync(full, e.mode);
      continue;
    }
    mkdirSync(dirname(full), { recursive: true });
    rmSync(full, { force: true });
    if (e.kind === "symlink") symlinkSync(e.target, full);
    else if (e.kind === "file") {
      const d = e.data;
      writeFileSync(full, typeof d === "string" || d instanceof Uint8Array ? d : readFileSync(d.file));
      chmodSync(full, e.mode);
    }
  }
}

/** A tiny package, made here: `name` at `version`, holding /usr/share/NAME/marker. */
function tinyDeb(dir: string, name: string, version: string): string {
  const root = join(dir, `${name}-root`);
  mkdirSync(join(root, "DEBIAN"), { recursive: true });
  mkdirSync(join(root, "usr/share", name), { recursive: true });
  writeFileSync(join(root, "usr/share", name, "marker"), `${name} ${version}\n`);
  writeFileSync(
    join(root, "DEBIAN/control"),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n`,
  );
  const out = join(dir, `${name}_${version}_all.deb`);
  ok("dpkg-deb", ["--root-owner-group", "--build", root, out]);
  return out;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
const VERSION = "${Version}";
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
const STATUS = "${db:Status-Status}";
let tarball = "";
let deb = "";

describe.skipIf(lacking(why))("first boot: the agent package installed in a Debian 12 root", () => {
  beforeAll(() => {
    tarball = ok("sh", [join(ROOT, "test/setup/debian12-root.sh")])
      .trim()
      .split("\n")
      .pop()!;
    deb = agentDeb("amd64");
  }, 900_000);

  test("dpkg keeps the device's config, installs exactly the package's files, enables the unit", () => {
    const work = openDir("qa-firstboot-");
    const root = join(work, "root");
    mkdirSync(root);
    ok("tar", ["-xf", tarball, "-C", root]);
    const zlib = ok("chroot", [root, "dpkg-query", "-W", "-f", VERSION, "zlib1g"]);
    const setup: DeviceSetup = {
      board: BOARDS["armory-mk2"],
      name: "armory-gpg",
      listen: { tty: "/dev/ttyGS0", tcp: "10.0.0.1:7441" },
      token: "ab".repeat(32),
      gadget: null,
      agentDeb: { name: deb.split("/").pop()!, file: deb },
      // One the root has (older: it must not be downgraded) and one it lacks.
      runtimeDebs: [tinyDeb(work, "zlib1g", "0.1"), tinyDeb(work, "qa-runtime-stand-in", "1.0")],
      usbAddress: null,
    };
    const plan = devicePlan(setup);
    // The image lays out none of the package's own files: only the conffile it overrides.
    const packaged = new Set(agent("amd64").entries.map((e) => e.path));
    expect(plan.filter((e) => packaged.has(e.path)).map((e) => e.path)).toEqual([AGENT_PATHS.config]);
    layOut(root, plan);
    const config = readFileSync(join(root, PATHS.config), "utf8");

    const out = ok("chroot", [root, INSTALL.script], "");
    expect(out).toContain("agent package installed");
    // dpkg saw a file of ours at its conffile path and kept it, as asked, without a prompt.
    expect(out).toContain("Using current old file as you requested");
    expect(out).not.toContain("(Y/I/N/O/D/Z)");
    const q = (args: string[]) => ok("chroot", [root, "dpkg-query", ...args]).trim();
    expect(q(["-W", "-f", STATUS, "qubes-air-agent"])).toBe("installed");
    // The device's own config, kept; the package's default policy; the token untouched.
    expect(readFileSync(join(root, PATHS.config), "utf8")).toBe(config);
    expect(parseConfig(JSON.parse(config), PATHS.config, { HOME: "/root" }).name).toBe("armory-gpg");
    expect(readFileSync(join(root, AGENT_PATHS.policy), "utf8")).toBe(
      readFileSync(join(ROOT, "core/qrexec/default-policy/50-qubes-air.policy"), "utf8"),
    );
    expect(readFileSync(join(root, PATHS.token), "utf8")).toBe(`${"ab".repeat(32)}\n`);
    expect(lstatSync(join(root, PATHS.token)).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(root, PATHS.stateDir)).mode & 0o777).toBe(0o700);
    // Installed files: exactly the package's layout (plus its docs), as dpkg books them.
    const listed = q(["-L", "qubes-air-agent"])
      .split("\n")
      .filter((p) => !p.startsWith("/usr/share/") && !statSync(join(root, p)).isDirectory());
    expect(listed.sort()).toEqual([...packaged].sort());
    // Enabled; the one-time install unit disabled and its files gone.
    const enabled = (u: string) =>
      spawnSync("systemctl", [`--root=${root}`, "is-enabled", u])
        .stdout.toString()
        .trim();
    expect(enabled(AGENT_UNIT)).toBe("enabled");
    expect(readlinkSync(join(root, PATHS.wants, AGENT_UNIT))).toBe(AGENT_PATHS.unit);
    expect(enabled(INSTALL.unitName)).toBe("disabled");
    expect(existsSync(join(root, INSTALL.dir))).toBe(false);
    // Runtime packages: the one the root had is left at its own version, the other installed.
    expect(q(["-W", "-f", VERSION, "zlib1g"])).toBe(zlib);
    expect(q(["-W", "-f", VERSION, "qa-runtime-stand-in"])).toBe("1.0");
    // The installed agent is the real program (run from outside: Bun wants /proc, a bare chroot has none).
    expect(ok(join(root, AGENT_PATHS.bin), ["--version"])).toMatch(/\d+\.\d+\.\d+/);
    // A later upgrade keeps the device's config too (dpkg booked it as the admin's).
    writeFileSync(join(root, "tmp/again.deb"), readFileSync(deb));
    ok("chroot", [root, "dpkg", "-i", "/tmp/again.deb"], "");
    expect(readFileSync(join(root, PATHS.config), "utf8")).toBe(config);
    rmSync(root, { recursive: true, force: true });
  }, 600_000);

  /** What cloud-init does with the user-data in `root`: write_files, then each runcmd entry
   * (cloud-init goes on to the next after a failure); returns the entries' exit codes and stderr. */
  async function cloudInit(root: string, sha256: string): Promise<{ codes: number[]; err: string }> {
    const bytes = readFileSync(deb);
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(bytes) });
    try {
      const text = cloudUserData({
        name: "build1",
        port: 7443,
        token: "cd".repeat(32),
        agent: { kind: "url", url: `http://127.0.0.1:${server.port}/pkg.deb`, sha256 },
      });
      const ud = Bun.YAML.parse(text) as {
        write_files: { path: string; permissions: string; content: string }[];
        runcmd: string[][];
      };
      // What cloud-init's write_files does (parents 0755, the file's own mode).
      for (const f of ud.write_files) {
        mkdirSync(dirname(join(root, f.path)), { recursive: true });
        writeFileSync(join(root, f.path), f.content, { mode: Number.parseInt(f.permissions, 8) });
      }
      const codes: number[] = [];
      let err = "";
      for (const cmd of ud.runcmd) {
        // The root has no curl: the fetch runs here, into the root (the server is this process's).
        const argv =
          cmd[0] === FETCH_SCRIPT
            ? [
                "sh",
                "-c",
                readFileSync(join(root, FETCH_SCRIPT), "utf8").replace(
                  `dest=${INSTALL.dir}/`,
                  `dest=${root}${INSTALL.dir}/`,
                ),
              ]
            : ["chroot", root, ...cmd];
        const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe" });
        codes.push(await p.exited);
        err += await new Response(p.stderr).text();
      }
      return { codes, err };
    } finally {
      server.stop(true);
    }
  }

  function freshRoot(prefix: string): string {
    const root = join(openDir(prefix), "root");
    mkdirSync(root);
    ok("tar", ["-xf", tarball, "-C", root]);
    return root;
  }

  test("cloud-init: the user-data's files and runcmd fetch, check and install the package", async () => {
    const root = freshRoot("qa-firstboot-cloud-");
    try {
      const sum = createHash("sha256").update(readFileSync(deb)).digest("hex");
      const run = await cloudInit(root, sum);
      expect(run.codes).toEqual(run.codes.map(() => 0));
      expect(run.err).not.toContain("qubes-air:"); // neither the fetch nor the install complained
      const q = (args: string[]) => ok("chroot", [root, "dpkg-query", ...args]).trim();
      expect(q(["-W", "-f", STATUS, "qubes-air-agent"])).toBe("installed");
      const config = JSON.parse(readFileSync(join(root, PATHS.config), "utf8"));
      expect(config).toMatchObject({ name: "build1", listen: { tcp: "0.0.0.0:7443" } });
      expect(lstatSync(join(root, PATHS.stateDir)).mode & 0o777).toBe(0o700);
      expect(lstatSync(join(root, PATHS.token)).mode & 0o777).toBe(0o600);
      expect(readlinkSync(join(root, PATHS.wants, AGENT_UNIT))).toBe(AGENT_PATHS.unit);
      expect(existsSync(join(root, INSTALL.dir))).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 600_000);

  test("cloud-init: a download that fails its sha256 installs and enables nothing, and says why", async () => {
    const root = freshRoot("qa-firstboot-cloud-bad-");
    try {
      const run = await cloudInit(root, "00".repeat(32));
      expect(run.codes.slice(-2)).toEqual([1, 1]); // the fetch refuses, then the install finds nothing
      expect(run.err).toContain("has the wrong sha256");
      expect(run.err).toContain("its download failed, see above): nothing installed");
      const status = spawnSync("chroot", [root, "dpkg-query", "-W", "qubes-air-agent"]);
      expect(status.status).not.toBe(0); // dpkg knows no such package
      expect(existsSync(join(root, PATHS.wants, AGENT_UNIT))).toBe(false);
      expect(existsSync(join(root, AGENT_PATHS.bin))).toBe(false);
      for (const f of [CLOUD_DEB, `${CLOUD_DEB}.download`])
        expect(existsSync(join(root, INSTALL.dir, f))).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 600_000);
});
