/**
 * The agents taken out of built images run on this machine under qemu-user and pair with the real
 * sys-remote daemon and CLI (`qubes-air pair NAME --tcp ... --token TOKEN`, the token the image
 * builder printed and wrote into the image). The image carries the agent package, installed at
 * first boot; here its .debs are taken out of the image and unpacked (dpkg-deb -x) as dpkg would:
 *  - the arm64 Bun binary from a Pi image's package, under qemu-aarch64-static -cpu cortex-a53
 *    (ARMv8.0, as on a Pi 3 / Zero 2 W: catches Bun builds that need newer instructions);
 *  - the Node bundle from an Armory image's armhf package on Debian's armhf Node from the .debs
 *    beside it, under qemu-arm-static (-L: the unpacked tree first), started as the package's
 *    wrapper starts it.
 * The device config is the image's own, with listen/state/paths moved into a temp dir; the
 * policy is the package's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cleanEnv,
  cleanup,
  cli,
  type Logged,
  makeHost,
  spawnLogged,
  startDaemon,
} from "../../fixtures/qubes-stubs/harness.ts";
import { PATHS } from "../../images/device-files.ts";
import { INSTALL } from "../../images/first-boot-install.ts";
import { AGENT_PATHS } from "../../packaging/layout.ts";
import {
  agentDeb,
  catIn,
  dumpFrom,
  has,
  nodeDebs,
  openDir,
  removeDirs,
  runImageCli,
} from "../fixtures/images/helpers.ts";
import {
  ARMORY_ROOT_OFFSET,
  makeArmoryBase,
  makePiBase,
  missingTools,
  PI_ROOT_START,
} from "../fixtures/images/make-base.ts";
import { lacking } from "../helpers/requires.ts";

const missing = missingTools();
let dir = "";
beforeAll(() => {
  if (missing.length === 0) dir = openDir("qa-image-qemu-");
});
afterEach(cleanup);
afterAll(removeDirs);

/** The image's first-boot .debs (agent package and runtime), unpacked into `x` as dpkg would. */
function unpackFirstBoot(img: string, offset: number, x: string): void {
  const debs = join(x, "..", "debs");
  mkdirSync(debs, { recursive: true });
  mkdirSync(x, { recursive: true });
  dumpFrom(img, offset, INSTALL.dir, debs, true);
  const all = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? all(join(d, e.name)) : e.name.endsWith(".deb") ? [join(d, e.name)] : [],
    );
  const found = all(debs);
  expect(found.some((d) => /qubes-air-agent_/.test(d))).toBe(true);
  for (const d of found) execFileSync("dpkg-deb", ["-x", d, x]);
}

/** The image's config and token, moved into `work` so the agent can run here as a test user. */
function deviceFiles(
  img: string,
  offset: number,
  work: string,
  x: string,
): { configPath: string; token: string } {
  const state = join(work, "state");
  const policy = join(work, "policy");
  mkdirSync(state, { recursive: true, mode: 0o700 });
  mkdirSync(policy, { recursive: true });
  mkdirSync(join(work, "home"), { recursive: true });
  const token = catIn(img, offset, PATHS.token);
  writeFileSync(join(state, "pairing-token"), token, { mode: 0o600 });
  writeFileSync(join(policy, "50-qubes-air.policy"), readFileSync(join(x, AGENT_PATHS.policy)));
  const config = JSON.parse(catIn(img, offset, PATHS.config));
  Object.assign(config, {
    listen: { tcp: "127.0.0.1:0" },
    stateDir: state,
    policyDir: policy,
    incomingDir: join(work, "home"),
    socket: join(work, "agent.sock"),
    handshakeMinIntervalMs: 0,
  });
  const configPath = join(work, "agent.json");
  writeFileSync(configPath, JSON.stringify(config));
  return { configPath, token: token.trim() };
}

/** Pairs a fresh sys-remote with the agent, with the CLI exactly as the builder prints it (TCP here). */
async function pairWithHost(agent: Logged, name: string, token: string, state: string) {
  const port = Number((await agent.waitLine(/listening tcp=\S+ port=(\d+)/, 60_000))[1]);
  const host = makeHost();
  // No dom0 here: the daemon pairs without creating the RemoteVM (enrol.test.ts covers that).
  const daemon = await startDaemon(host, ["--no-register"]);
  const r = await cli(host, ["pair", name, "--tcp", `127.0.0.1:${port}`, "--zone", "usb", "--token", token]);
  expect(r.stderr).toBe("Not created in dom0: registration is off (--no-register)\n");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`Paired ${name}: agent `);
  await agent.waitLine(/paired/, 30_000);
  await daemon.waitLine(new RegExp(`${name}: up`), 30_000);
  expect(existsSync(join(state, "pairing-token"))).toBe(false); // one-time: used up
  const hosts = JSON.parse(readFileSync(join(state, "hosts.json"), "utf8"));
  expect(hosts.hosts).toHaveLength(1);
  const list = await cli(host, ["list"]);
  expect(list.stdout).toContain(name);
}

const arm64Skip =
  missing.length > 0
    ? `missing tools ${missing.join(", ")}`
    : !has("qemu-aarch64-static") || !existsSync("/lib/ld-linux-aarch64.so.1")
      ? "needs qemu-user-static and libc6:arm64 (dpkg --add-architecture arm64)"
      : "";

describe.skipIf(lacking(arm64Skip || null))(`Pi image agent under qemu-aarch64 ${arm64Skip}`, () => {
  test("pairs with sys-remote using the token from the image", async () => {
    const base = makePiBase(dir, "bookworm");
    const img = join(dir, "pi.img");
    const r = runImageCli(
      [
        "build",
        "--board",
        "pi4",
        "--base",
        base,
        "--out",
        img,
        "--name",
        "pi-gpg",
        "--agent",
        agentDeb("arm64"),
        "--no-qr",
      ],
      dir,
    );
    expect(r.code).toBe(0);
    const printed = /--token ([0-9a-f]{64})/.exec(r.stdout)![1]!;
    const work = join(dir, "pi-work");
    mkdirSync(work);
    const offset = PI_ROOT_START * 512;
    const x = join(work, "x");
    unpackFirstBoot(img, offset, x);
    const { configPath, token } = deviceFiles(img, offset, work, x);
    expect(token).toBe(printed);
    const agentBin = join(x, AGENT_PATHS.bin);
    const agent = spawnLogged(
      ["qemu-aarch64-static", "-cpu", "cortex-a53", agentBin, "run", "--config", configPath],
      {
        ...cleanEnv(),
        HOME: join(work, "home"),
      },
    );
    await pairWithHost(agent, "pi-gpg", token, join(work, "state"));
  }, 90_000);
});

const debs = missing.length > 0 || !has("qemu-arm-static") ? null : nodeDebs();
const armhfSkip =
  missing.length > 0
    ? `missing tools ${missing.join(", ")}`
    : !has("qemu-arm-static") || !existsSync("/lib/ld-linux-armhf.so.3")
      ? "needs qemu-user-static and libc6:armhf (dpkg --add-architecture armhf)"
      : debs && "skip" in debs
        ? debs.skip
        : "";

describe.skipIf(lacking(armhfSkip || null))(
  `Armory image agent on Debian's Node under qemu-arm ${armhfSkip}`,
  () => {
    test("the package's wrapper command starts it, and it pairs with sys-remote", async () => {
      const base = makeArmoryBase(dir);
      const img = join(dir, "armory.img");
      const r = runImageCli(
        [
          "build",
          "--board",
          "armory-mk2",
          "--base",
          base,
          "--out",
          img,
          "--name",
          "armory-gpg",
          "--agent",
          agentDeb("armhf"),
          "--node-debs",
          (debs as { dir: string }).dir,
          "--no-qr",
        ],
        dir,
      );
      expect(r.code).toBe(0);
      const work = join(dir, "armory-work");
      const x = join(work, "x");
      unpackFirstBoot(img, ARMORY_ROOT_OFFSET, x);
      const { configPath, token } = deviceFiles(img, ARMORY_ROOT_OFFSET, work, x);
      // The wrapper's exec line for this Node (18 needs a flag), its programs under x (qemu -L x
      // finds the libraries and /usr/share/nodejs there).
      const wrapper = readFileSync(join(x, AGENT_PATHS.bin), "utf8").split("\n");
      const node18 = readdirSync(
        join(work, "debs", INSTALL.runtimeDir.slice(INSTALL.dir.lastIndexOf("/") + 1)),
      ).some((n) => /^nodejs_18\./.test(n));
      const exec = node18
        ? wrapper
            .find((l) => l.startsWith("v1[0-8].*) exec "))!
            .replace(/^v1\[0-8\]\.\*\) /, "")
            .replace(/ ;;$/, "")
        : [...wrapper].reverse().find((l) => l.startsWith("exec "))!;
      const words = exec.split(/\s+/).slice(1);
      expect(words.pop()).toBe('"$@"');
      const argv = words.map((w) => (w.startsWith("/usr/") ? join(x, w) : w));
      const agent = spawnLogged(["qemu-arm-static", "-L", x, ...argv, "run", "--config", configPath], {
        ...cleanEnv(),
        HOME: join(work, "home"),
      });
      await pairWithHost(agent, "armory-gpg", token, join(work, "state"));
    }, 120_000);
  },
);
