/**
 * `bun run package` (packaging/build.ts): the five packages build, lint clean (lintian,
 * rpmlint; every kept warning is an override with its reason), and each installs, upgrades (a
 * second build with a higher version) and purges in a throwaway root: the debs with dpkg in a
 * Debian 12 chroot (mmdebstrap, cached by test/setup/debian12-root.sh), the rpms with
 * `rpm --root` in the same kind of root (it gives the scriptlets /bin/sh and systemctl). Checked:
 * files and modes, the unit enabled or not as intended (`systemctl --root`), conffiles kept, and
 * after purge nothing left but the state the user owns. The dom0 policy parses under our parser
 * and denies by default; its examples parse and do what they say.
 * Needs root (chroot) and dpkg-deb, rpmbuild, lintian, rpmlint (scripts/system-deps.sh).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { parseConfig } from "../../agent/config.ts";
import { evaluate } from "../../core/qrexec/policy-eval.ts";
import { parsePolicy } from "../../core/qrexec/policy-parse.ts";
import { buildPackages } from "../../packaging/build.ts";
import { ARTEFACTS, buildAll, sha256File } from "../../scripts/build.ts";
import { ensureDist, has, openDir, ROOT, removeDirs } from "../fixtures/images/helpers.ts";
import { lacking } from "../helpers/requires.ts";

afterAll(removeDirs);

const TOOLS = ["dpkg-deb", "rpmbuild", "rpm", "lintian", "rpmlint", "systemctl", "chroot", "tar"];
const why =
  process.getuid?.() !== 0
    ? "root (the packages are installed in a chroot)"
    : TOOLS.filter((t) => !has(t)).join(", ") || null;

interface Run {
  code: number;
  out: string;
}
function run(cmd: string, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, timeout: 300_000 });
  return { code: r.status ?? -1, out: `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}` };
}
function ok(cmd: string, args: string[], env: Record<string, string> = {}): string {
  const r = run(cmd, args, env);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}:\n${r.out}`);
  return r.out;
}

/** Every path under root (relative, with a trailing / for directories), minus the package managers' own books. */
const NOT_OURS = [
  /^var\/lib\/dpkg\//,
  /^var\/log\//,
  /^var\/lib\/rpm\//,
  /^var\/cache\//,
  /^tmp\//,
  /^var\/lib\/rpm$/,
];
function listing(root: string): Set<string> {
  const out = new Set<string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) {
        out.add(`${r}/`);
        walk(r);
      } else out.add(r);
    }
  };
  walk("");
  return new Set([...out].filter((p) => !NOT_OURS.some((re) => re.test(p))));
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
const DPKG_VERSION = "${Version}";
let tarball = "";
let v1 = "";
let v2 = "";
let pkgs1: string[] = [];
let pkgs2: string[] = [];
const find = (list: string[], re: RegExp) => {
  const f = list.find((p) => re.test(basename(p)));
  if (!f) throw new Error(`no package matching ${re} in ${list.map((p) => basename(p)).join(", ")}`);
  return f;
};

function freshRoot(): { root: string; before: Set<string> } {
  const root = openDir("qa-pkgroot-");
  ok("tar", ["-xf", tarball, "-C", root]);
  return { root, before: listing(root) };
}
const mode = (root: string, path: string) => (lstatSync(join(root, path)).mode & 0o7777).toString(8);
const enabled = (root: string, unit: string) =>
  run("systemctl", [`--root=${root}`, "is-enabled", unit]).out.trim();
function inRoot(root: string, args: string[]): string {
  return ok("chroot", [root, ...args], {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    DEBIAN_FRONTEND: "noninteractive",
  });
}
function dpkgInstall(root: string, deb: string, force: boolean): string {
  copyFileSync(deb, join(root, "tmp", basename(deb)));
  return inRoot(root, [
    "dpkg",
    ...(force ? ["--force-depends", "--force-architecture"] : []),
    "-i",
    `/tmp/${basename(deb)}`,
  ]);
}
function newPaths(root: string, before: Set<string>): string[] {
  return [...listing(root)].filter((p) => !before.has(p)).sort();
}

const IDS = ["host-x64", "relay-x64", "agent-x64", "agent-arm64", "agent-node"];

/**
 * The shared test build (ensureDist) copied into this file's own directory: another test process
 * on this machine may rebuild the shared one while the packages are made. Whatever does not match
 * the manifest after the copy is rebuilt here.
 */
function ownDist(shared: string): string {
  const dist = openDir("qa-pkg-dist-");
  for (const name of readdirSync(shared)) copyFileSync(join(shared, name), join(dist, name));
  const manifest = JSON.parse(readFileSync(join(dist, "manifest.json"), "utf8")) as {
    artefacts: { file: string; sha256: string }[];
  };
  const stale = ARTEFACTS.filter((a) => IDS.includes(a.id)).filter((a) => {
    const entry = manifest.artefacts.find((e) => e.file === a.file);
    return !entry || !existsSync(join(dist, a.file)) || sha256File(join(dist, a.file)) !== entry.sha256;
  });
  if (stale.length > 0) buildAll({ out: dist, only: stale.map((a) => a.id), log: () => {} });
  return dist;
}

describe.skipIf(lacking(why))("bun run package", () => {
  beforeAll(() => {
    const started = performance.now();
    tarball = ok("sh", [join(ROOT, "test/setup/debian12-root.sh")])
      .trim()
      .split("\n")
      .pop()!;
    const rootSeconds = (performance.now() - started) / 1000;
    const dist = ownDist(ensureDist(IDS));
    v1 = JSON.parse(readFileSync(join(dist, "manifest.json"), "utf8")).version;
    v2 = `${v1}.1`;
    const out = openDir("qa-pkg-");
    const log = () => {};
    pkgs1 = buildPackages({ dist, out: join(out, "v1"), log });
    pkgs2 = buildPackages({ dist, out: join(out, "v2"), version: v2, log });
    process.stderr.write(
      `packages: root ${rootSeconds.toFixed(1)} s, total set-up ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
    );
  }, 900_000);

  test("five packages (six files), named as the formats want", () => {
    expect(pkgs1.map((p) => basename(p)).sort()).toEqual(
      [
        `qubes-air-agent_${v1}_amd64.deb`,
        `qubes-air-agent_${v1}_arm64.deb`,
        `qubes-air-agent_${v1}_armhf.deb`,
        `qubes-air-dom0-${v1}-1.noarch.rpm`,
        `qubes-air-sys-remote-${v1}-1.x86_64.rpm`,
        `qubes-air-sys-remote_${v1}_amd64.deb`,
      ].sort(),
    );
    const control = ok("dpkg-deb", ["-f", find(pkgs1, /agent_.*_armhf/)]);
    expect(control).toContain("Depends: nodejs (>= 18)");
    expect(ok("rpm", ["-qp", "--qf", "%{ARCH}\n", find(pkgs1, /dom0/)]).trim()).toBe("noarch");
  });

  test("lintian and rpmlint: clean, every kept warning an override with its reason", () => {
    const debs = pkgs1.filter((p) => p.endsWith(".deb"));
    const l = run("lintian", ["--tag-display-limit", "0", "--fail-on", "error,warning", ...debs]);
    expect({ code: l.code, out: l.out.split("\n").filter((x) => /^[EW]:/.test(x)) }).toEqual({
      code: 0,
      out: [],
    });
    const rpms = pkgs1.filter((p) => p.endsWith(".rpm"));
    const r = run("rpmlint", ["-r", join(ROOT, "packaging/rpmlintrc"), ...rpms]);
    expect(r.out).toContain("0 errors, 0 warnings");
    expect(r.code).toBe(0);
    for (const f of ["qubes-air-sys-remote", "qubes-air-agent"]) {
      const lines = readFileSync(join(ROOT, "packaging/lintian", f), "utf8").split("\n");
      // Every override follows a comment (its reason) or another override under the same comment.
      expect(lines.findIndex((x) => x.startsWith(`${f}:`))).toBeGreaterThan(0);
      expect(lines[0]!.startsWith("#")).toBe(true);
    }
  }, 600_000); // lintian reads ~100 MiB binaries: 38–136 s here, more with the cores busy

  test("sys-remote deb: install, upgrade, purge in a Debian 12 chroot", () => {
    const { root, before } = freshRoot();
    dpkgInstall(root, find(pkgs1, /sys-remote_.*\.deb$/), false);
    expect(mode(root, "usr/bin/qubes-air")).toBe("755");
    expect(mode(root, "usr/lib/qubes-air/qubesair-relay")).toBe("755");
    expect(readlinkSync(join(root, "etc/qubes-rpc/qubesair.NoiseProxy"))).toBe(
      "/usr/lib/qubes-air/qubesair-relay",
    );
    expect(readlinkSync(join(root, "etc/qubes-rpc/qubesair.Call"))).toBe("/usr/lib/qubes-air/qubesair-relay");
    expect(mode(root, "etc/qubes/post-install.d/50-qubes-air.sh")).toBe("755");
    const unit = readFileSync(join(root, "lib/systemd/system/qubes-air.service"), "utf8");
    expect(unit).toContain("ConditionPathExists=/run/qubes-service/qubes-air");
    expect(unit).toContain("ExecStart=/usr/bin/qubes-air daemon");
    expect(unit).toMatch(/^User=user$/m);
    expect(unit).not.toContain("/usr/local");
    expect(enabled(root, "qubes-air.service")).toBe("enabled");
    const udev = readFileSync(join(root, "lib/udev/rules.d/60-qubes-air.rules"), "utf8");
    expect(udev).toContain('ENV{ID_MM_DEVICE_IGNORE}="1"');
    expect(udev).toContain('SYMLINK+="qubes-air/%s{serial}"');
    expect(newPaths(root, before).filter((p) => p.includes("/local/"))).toEqual([]);
    // Upgrade: the new version, still enabled; the user's state is there and untouched.
    mkdirSync(join(root, "home/user/.local/share/qubes-air"), { recursive: true });
    writeFileSync(join(root, "home/user/.local/share/qubes-air/registry.json"), "{}\n");
    dpkgInstall(root, find(pkgs2, /sys-remote_.*\.deb$/), false);
    expect(inRoot(root, ["dpkg-query", "-W", "-f", DPKG_VERSION, "qubes-air-sys-remote"])).toBe(v2);
    expect(enabled(root, "qubes-air.service")).toBe("enabled");
    inRoot(root, ["dpkg", "--purge", "qubes-air-sys-remote"]);
    expect(newPaths(root, before)).toEqual([
      "home/user/",
      "home/user/.local/",
      "home/user/.local/share/",
      "home/user/.local/share/qubes-air/",
      "home/user/.local/share/qubes-air/registry.json",
    ]);
  }, 300_000);

  for (const arch of ["amd64", "arm64", "armhf"] as const) {
    test(`agent deb ${arch}: install, upgrade (conffile kept), purge (state kept)`, () => {
      const { root, before } = freshRoot();
      const foreign = arch !== "amd64";
      dpkgInstall(root, find(pkgs1, new RegExp(`agent_.*_${arch}\\.deb$`)), foreign);
      expect(mode(root, "usr/bin/qubes-air-agent")).toBe("755");
      if (arch === "armhf") {
        expect(readFileSync(join(root, "usr/bin/qubes-air-agent"), "utf8")).toContain(
          "exec /usr/bin/node /usr/lib/qubes-air/qubes-air-agent.mjs",
        );
        expect(mode(root, "usr/lib/qubes-air/qubes-air-agent.mjs")).toBe("644");
      } else {
        const machine = readFileSync(join(root, "usr/bin/qubes-air-agent")).readUInt16LE(18);
        expect(machine).toBe(arch === "amd64" ? 62 : 183);
      }
      expect(mode(root, "var/lib/qubes-air")).toBe("700");
      expect(mode(root, "etc/qubes-air/agent.json")).toBe("644");
      const config = join(root, "etc/qubes-air/agent.json");
      // The default config is one the agent accepts.
      expect(parseConfig(JSON.parse(readFileSync(config, "utf8")), config, {}).name).toBe("qubes-air-device");
      expect(readFileSync(join(root, "etc/qubes-air/policy.d/50-qubes-air.policy"), "utf8")).toBe(
        readFileSync(join(ROOT, "core/qrexec/default-policy/50-qubes-air.policy"), "utf8"),
      );
      const unit = readFileSync(join(root, "lib/systemd/system/qubes-air-agent.service"), "utf8");
      expect(unit).toContain("ExecStart=/usr/bin/qubes-air-agent run --config /etc/qubes-air/agent.json");
      expect(enabled(root, "qubes-air-agent.service")).toBe("disabled");
      // The operator configures and enables it; the upgrade keeps both.
      const edited = readFileSync(config, "utf8").replace("qubes-air-device", "pi-gpg");
      writeFileSync(config, edited);
      ok("systemctl", [`--root=${root}`, "enable", "qubes-air-agent.service"]);
      writeFileSync(join(root, "var/lib/qubes-air/static.key"), "key\n");
      dpkgInstall(root, find(pkgs2, new RegExp(`agent_.*_${arch}\\.deb$`)), foreign);
      expect(inRoot(root, ["dpkg-query", "-W", "-f", DPKG_VERSION, "qubes-air-agent"])).toBe(v2);
      expect(readFileSync(config, "utf8")).toBe(edited);
      expect(enabled(root, "qubes-air-agent.service")).toBe("enabled");
      inRoot(root, ["dpkg", "--purge", "qubes-air-agent"]);
      expect(newPaths(root, before)).toEqual(["var/lib/qubes-air/", "var/lib/qubes-air/static.key"]);
      expect(mode(root, "var/lib/qubes-air")).toBe("700");
    }, 300_000);
  }

  function rpmRoot(): { root: string; before: Set<string>; rpm: (args: string[]) => string } {
    const r = freshRoot();
    // Directories that packages of the real system own (qubes-core-agent or qubes-core-dom0,
    // qubes-mgmt-salt for the formulas tree, filesystem): rpm would create them for ours and, not
    // owning them, leave them on erase.
    for (const d of [
      "etc/qubes-rpc",
      "etc/qubes/post-install.d",
      "etc/qubes/policy.d",
      "usr/share/licenses",
      "srv/formulas/base",
    ])
      mkdirSync(join(r.root, d), { recursive: true });
    ok("rpm", ["--root", r.root, "--initdb"]);
    const rpm = (args: string[]) => ok("rpm", ["--root", r.root, ...args]);
    return { ...r, before: listing(r.root), rpm };
  }

  test("sys-remote rpm: install, upgrade, erase with rpm --root", () => {
    const { root, before, rpm } = rpmRoot();
    rpm(["-i", "--nodeps", find(pkgs1, /sys-remote-.*\.rpm$/)]);
    expect(mode(root, "usr/bin/qubes-air")).toBe("755");
    expect(readlinkSync(join(root, "etc/qubes-rpc/qubesair.NoiseProxy"))).toBe(
      "../../usr/lib/qubes-air/qubesair-relay",
    );
    expect(existsSync(join(root, "etc/qubes-rpc/qubesair.Call"))).toBe(true);
    expect(readFileSync(join(root, "usr/lib/systemd/system/qubes-air.service"), "utf8")).toContain(
      "ConditionPathExists=/run/qubes-service/qubes-air",
    );
    expect(readFileSync(join(root, "usr/lib/udev/rules.d/60-qubes-air.rules"), "utf8")).toContain(
      "ID_MM_DEVICE_IGNORE",
    );
    // %post ran `systemctl preset` in the root: the preset file enables it.
    expect(enabled(root, "qubes-air.service")).toBe("enabled");
    rpm(["-U", "--nodeps", find(pkgs2, /sys-remote-.*\.rpm$/)]);
    expect(rpm(["-q", "--qf", "%{VERSION}", "qubes-air-sys-remote"])).toBe(v2);
    expect(enabled(root, "qubes-air.service")).toBe("enabled");
    mkdirSync(join(root, "home/user/.local/share/qubes-air"), { recursive: true });
    writeFileSync(join(root, "home/user/.local/share/qubes-air/host.key"), "k\n");
    rpm(["-e", "--nodeps", "qubes-air-sys-remote"]);
    expect(newPaths(root, before)).toEqual([
      "home/user/",
      "home/user/.local/",
      "home/user/.local/share/",
      "home/user/.local/share/qubes-air/",
      "home/user/.local/share/qubes-air/host.key",
    ]);
  }, 300_000);

  test("dom0 rpm: the policy file (deny by default; its examples work), the formula; erase", () => {
    const { root, before, rpm } = rpmRoot();
    rpm(["-i", "--nodeps", find(pkgs1, /dom0-.*\.rpm$/)]);
    const name = "50-qubes-air.policy";
    const path = join(root, "etc/qubes/policy.d", name);
    expect(mode(root, `etc/qubes/policy.d/${name}`)).toBe("644");
    // Registration: the dom0 service and its policy (their decisions: test/integration/register-remote.test.ts).
    expect(readFileSync(join(root, "etc/qubes/policy.d/45-qubes-air-register.policy"), "utf8")).toBe(
      readFileSync(join(ROOT, "packaging/files/dom0/45-qubes-air-register.policy"), "utf8"),
    );
    expect(readFileSync(join(root, "etc/qubes-rpc/qubesair.RegisterRemote"), "utf8")).toBe(
      readFileSync(join(ROOT, "packaging/files/dom0/qubesair.RegisterRemote"), "utf8"),
    );
    expect(mode(root, "etc/qubes-rpc/qubesair.RegisterRemote")).toBe("755");
    expect(rpm(["-qR", "qubes-air-dom0"])).toContain("python3-qubesadmin");
    expect(existsSync(join(root, "etc/qubes/policy.d/45-qubes-air-admin.policy"))).toBe(false);
    const text = readFileSync(path, "utf8");
    const policy = parsePolicy([{ name, text }]);
    const system = {
      qubes: new Map([
        ["work", { type: "AppVM", tags: [] }],
        ["sys-remote", { type: "AppVM", tags: [] }],
        ["pi-gpg", { type: "RemoteVM", tags: ["relayvm-sys-remote"] }],
      ]),
    };
    const call = { service: "qubes.Gpg2", arg: "", source: "work", target: "pi-gpg" };
    expect(evaluate(policy, call, system).action).toBe("deny");
    // The Admin API is left to Qubes' own admin policy: this file has no rule for it.
    const admin = { service: "admin.vm.property.Get", arg: "label", source: "sys-remote", target: "pi-gpg" };
    expect(evaluate(policy, admin, system).rule).toBeNull();
    // Another relay qube's RemoteVM is denied as well (by type, not by the relay's tag).
    const other = {
      qubes: new Map([...system.qubes, ["pi-2", { type: "RemoteVM", tags: ["relayvm-sys-cloud"] }]]),
    };
    expect(evaluate(policy, { ...call, target: "pi-2" }, other).action).toBe("deny");
    expect(
      evaluate(policy, { ...call, service: "qubesair.NoiseProxy", target: "sys-remote" }, system).action,
    ).toBe("deny");
    // The examples, each uncommented in a 30-user.policy, parse and decide as their comment says.
    const examples = text
      .split("\n")
      .filter((l) => /^#\s{3}\S+\s+\S+\s+\S+\s+\S+\s+(allow|ask|deny)/.test(l))
      .map((l) => l.replace(/^#\s+/, ""));
    expect(examples.length).toBeGreaterThanOrEqual(5);
    for (const rule of examples) {
      const p = parsePolicy([
        { name: "30-user.policy", text: `${rule}\n` },
        { name, text },
      ]);
      const [service, arg, source, target] = rule.split(/\s+/);
      const req = {
        service: service!,
        arg: arg === "*" || arg === "+" ? "" : arg!.slice(1),
        source: source!,
        target: target!.startsWith("@tag:") ? "pi-gpg" : target!,
      };
      const want = rule.includes(" ask") ? "ask" : "allow";
      expect({ rule, action: evaluate(p, req, system).action }).toEqual({ rule, action: want });
    }
    const salt = existsSync(join(ROOT, "salt"));
    const formula = join(root, "srv/formulas/base/qubes-air-formula");
    expect(existsSync(formula)).toBe(salt);
    rpm(["-U", "--nodeps", find(pkgs2, /dom0-.*\.rpm$/)]);
    expect(rpm(["-q", "--qf", "%{VERSION}", "qubes-air-dom0"])).toBe(v2);
    rpm(["-e", "--nodeps", "qubes-air-dom0"]);
    expect(newPaths(root, before)).toEqual([]);
    rmSync(root, { recursive: true, force: true });
  }, 300_000);
});
