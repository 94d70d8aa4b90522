/**
 * A cloud VM from `qubes-air image cloud`, booted for real: the user-data it wrote is a NoCloud
 * seed on a Debian 12 amd64 VM (test/setup/debian12-cloud-vm.sh) under qemu-system-x86_64 (KVM
 * where it opens, else TCG), and the link is TCP through qemu's user network (hostfwd to the
 * agent's port, as a provider's firewall would forward it).
 * First boot: cloud-init downloads the agent over HTTP from this host and checks its sha256,
 * writes config/policy/token/unit and starts the unit; the agent makes its key; a wrong token
 * is refused (host CLI and the VM's console both say so); the printed `qubes-air pair` command
 * pairs; a relayed call, a device-policy refusal and a file copy work. Power-off, second boot:
 * the agent comes back from its unit (cloud-init does not run the instance again), the daemon
 * reconnects with IK and nothing pairs again. Then the disk shows what first boot changed.
 * Every wait is on a console/log line with a generous deadline; qemu is killed in cleanup.
 * Timings (boot-to-listening, -paired, -first-call) are printed for the CI note.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { nocloudSeed } from "../../fixtures/boot/nocloud-seed.ts";
import { accelFor, flatten, freePort, type Guest, overlay, startGuest } from "../../fixtures/boot/qemu-vm.ts";
import {
  buildRelay,
  cleanup,
  cli,
  type Host,
  type Logged,
  makeHost,
  ROOT,
  runRelayAs,
  startDaemon,
} from "../../fixtures/qubes-stubs/harness.ts";
import { localQubeName } from "../../host/cli/common.ts";
import { PATHS } from "../../images/device-files.ts";
import { agentDeb, catIn, has, openDir, removeDirs, runImageCli } from "../fixtures/images/helpers.ts";
import { lacking } from "../helpers/requires.ts";

const NAME = "cloud-boot";
const PORT = 7441;
const MIN = 60_000;
const tools = ["qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy", "debugfs", "mmdebstrap"];
const missingTools = tools.filter((t) => !has(t));
const rootless = process.getuid?.() !== 0 && !process.env.QUBES_AIR_CLOUD_VM;
const why =
  missingTools.length > 0
    ? `${missingTools.join(", ")} (scripts/system-deps.sh)`
    : rootless
      ? "root to build the cached VM root (or QUBES_AIR_CLOUD_VM pointing at a built one)"
      : null;

const accel = accelFor("x86_64");
const times: Record<string, number> = {};
const mark = (what: string, guest: Guest) => {
  times[what] = Math.round((performance.now() - guest.startedAt) / 100) / 10;
};

let dir = "";
let vm = "";
let disk = "";
let seed = "";
let hostPort = 0;
let host: Host;
let daemon: Logged;
let relay = "";
let token = "";
let server: ReturnType<typeof Bun.serve> | undefined;
let guest: Guest | undefined;
let incomingDir = "";

/** The VM as a small cloud instance: 1 vCPU, 768 MiB, virtio disk + seed, user network. */
function boot(): Guest {
  const cpu =
    accel === "kvm" ? ["-accel", "kvm", "-cpu", "host,-arch-capabilities"] : ["-accel", "tcg", "-cpu", "max"];
  return startGuest({
    qemu: "qemu-system-x86_64",
    args: [
      "-M",
      "q35",
      ...cpu,
      "-smp",
      "1",
      "-m",
      "768",
      "-no-reboot",
      "-kernel",
      join(vm, "vmlinuz"),
      "-initrd",
      join(vm, "initrd.img"),
      // The journal goes to the console too: the agent's log lines are what the test waits on,
      // as a user reads them with the provider's serial console.
      "-append",
      // no_timer_check: a busy host under TCG can miss the IO-APIC timer check and panic; panic=-1
      // with -no-reboot: a panic ends qemu (the test fails at once) instead of hanging.
      "root=/dev/vda rw console=ttyS0 systemd.journald.forward_to_console=1 ds=nocloud no_timer_check panic=-1",
      "-drive",
      `file=${disk},if=virtio,format=qcow2`,
      "-drive",
      `file=${seed},if=virtio,format=raw,readonly=on`,
      "-nic",
      `user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:${hostPort}-:${PORT}`,
    ],
  });
}

/**
 * The amd64 agent package `image cloud --agent` takes, as our own copy (the shared dist cache may
 * be rebuilt by another test process meanwhile, and the VM checks the sha256 of this file).
 */
function cloudAgentArtefact(): string {
  const source = agentDeb("amd64");
  const copy = join(openDir("qa-boot-agent-"), basename(source));
  copyFileSync(source, copy);
  return copy;
}

beforeAll(async () => {
  if (why) return;
  dir = openDir("qa-boot-cloud-");
  const setup = spawnSync("sh", [join(ROOT, "test/setup/debian12-cloud-vm.sh")], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (setup.status !== 0) throw new Error("test/setup/debian12-cloud-vm.sh failed (its output is above)");
  vm = setup.stdout.toString().trim();
  const agentFile = cloudAgentArtefact();
  const served = `/${basename(agentFile)}`;
  // The agent is downloaded as on a real cloud (--agent-url): from this host, which the VM
  // reaches as 10.0.2.2 on qemu's user network.
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) =>
      new URL(req.url).pathname === served
        ? new Response(Bun.file(agentFile))
        : new Response("not here", { status: 404 }),
  });
  const out = join(dir, "seed");
  const r = runImageCli(
    [
      "cloud",
      "--name",
      NAME,
      "--port",
      String(PORT),
      "--agent-url",
      `http://10.0.2.2:${server.port}${served}`,
      "--agent",
      agentFile,
      "--out",
      out,
      // This test pairs by hand with the printed command (enrol.test.ts covers enrolment).
      "--no-enrol",
    ],
    dir,
  );
  if (r.code !== 0) throw new Error(`image cloud failed: ${r.stderr}`);
  token = /--token ([0-9a-f]{64})/.exec(r.stdout)![1]!;
  seed = nocloudSeed(dir, join(out, "user-data"), `iid-${NAME}`, NAME);
  disk = overlay(join(vm, "root.ext4"), dir);
  hostPort = await freePort();
  host = makeHost();
  // No dom0 here to make the RemoteVM in: the daemon is told so, as outside Qubes.
  [relay, daemon] = await Promise.all([buildRelay(), startDaemon(host, ["--no-register"])]);
}, 20 * MIN);

afterAll(async () => {
  cleanup(); // kills qemu and the daemon
  await server?.stop(true);
  removeDirs();
  if (Object.keys(times).length > 0)
    console.log(`cloud VM boot timings (s, ${accel}):`, JSON.stringify(times));
});

describe.skipIf(lacking(why))(`cloud VM from "image cloud" under qemu-system-x86_64 (${accel})`, () => {
  test(
    "first boot: cloud-init starts the agent; a wrong token is refused; pairs; calls and a copy work",
    async () => {
      guest = boot();
      const c = guest.console;
      await c.waitLine(/Linux version \d/, 2 * MIN);
      // Where copies land, as the agent itself says (the package may run it as its own user).
      incomingDir = (await c.waitLine(/qubes-air-agent: incoming-cleanup dir=(\S+)/, 12 * MIN))[1]!;
      const listening = await c.waitLine(/qubes-air-agent: listening tcp=\S+ port=(\d+)/, 5 * MIN);
      expect(Number(listening[1])).toBe(PORT);
      mark("listening", guest);

      // A mistyped token: what the user sees is the CLI's refusal and the VM's console line.
      const wrong = token.replace(/^./, (ch) => (ch === "0" ? "1" : "0"));
      const bad = await cli(host, [
        "pair",
        NAME,
        "--tcp",
        `127.0.0.1:${hostPort}`,
        "--zone",
        "cloud",
        "--token",
        wrong,
      ]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("the device refused the token");
      expect(bad.stdout).not.toContain("Paired");
      console.log(`wrong token: exit ${bad.code}: ${bad.stderr.trim()}`);
      await c.waitLine(/qubes-air-agent: refused .*code=handshake-psk/, 2 * MIN);

      // The command `image cloud` printed, with the VM's forwarded address.
      const ok = await cli(host, [
        "pair",
        NAME,
        "--tcp",
        `127.0.0.1:${hostPort}`,
        "--zone",
        "cloud",
        "--token",
        token,
      ]);
      // stderr says only that the RemoteVM was not made in dom0 (--no-register).
      expect(ok.stderr).not.toMatch(/refused|error|token/i);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain(`Paired ${NAME}: agent `);
      await c.waitLine(/qubes-air-agent: paired /, 2 * MIN);
      await daemon.waitLine(new RegExp(`${NAME}: up`), 2 * MIN);
      mark("paired", guest);

      // A RemoteVM call through the relay, as qrexec-agent runs it in sys-remote.
      const qubesdb = { QUBESDB_STUB: `/remote/${NAME}=${NAME}` };
      const audit = await runRelayAs(relay, host, {
        argument: `${NAME}+qubesair.AuditLog+`,
        caller: "sys-remote",
        env: qubesdb,
      });
      expect([audit.code, audit.stderr]).toEqual([0, ""]);
      mark("first-call", guest);
      // The VM's shipped policy refuses a root shell to any caller: 126 from the device.
      const shell = await runRelayAs(relay, host, {
        argument: `${NAME}+qubes.VMRootShell+`,
        caller: "work",
        env: qubesdb,
        stdin: "id\n",
      });
      expect(shell.code).toBe(126);
      expect(shell.stdout).toBe("");

      // A file copy (qvm-copy's qubes.Filecopy) into QubesIncoming/<this qube's name>/.
      const file = join(dir, "report.txt");
      writeFileSync(file, `copied to ${NAME} ${token.slice(0, 8)}\n`);
      const copy = await cli(host, ["copy-to", "--without-progress", NAME, file]);
      expect([copy.code, copy.stderr]).toEqual([0, ""]);
      mark("copied", guest);

      const list = await cli(host, ["list"]);
      expect(list.stdout).toContain(NAME);
      expect(await guest.powerOff(5 * MIN)).toBe(0);
      await daemon.waitLine(new RegExp(`${NAME}: (down|lost|reconnecting)`), 2 * MIN);
    },
    25 * MIN,
  );

  test(
    "second boot: the unit starts the agent, the daemon reconnects with IK, nothing pairs again",
    async () => {
      expect(guest).toBeDefined();
      guest?.kill(); // only still running if the first boot's test failed half way
      await guest?.console.exited;
      guest = boot();
      const c = guest.console;
      // The state survived: one pinned host, token pairing closed for good.
      await c.waitLine(/qubes-air-agent: starting .*pinnedHosts=1 pairing=closed/, 10 * MIN);
      await c.waitLine(/qubes-air-agent: listening tcp=/, 5 * MIN);
      mark("reboot-listening", guest);
      await c.waitLine(/qubes-air-agent: session-up .*mode=reconnect/, 5 * MIN);
      await daemon.waitLine(new RegExp(`${NAME}: up`), 2 * MIN);
      mark("reboot-up", guest);
      expect(c.lines.some((l) => /qubes-air-agent: paired /.test(l))).toBe(false);
      expect(c.lines.some((l) => /pairing-token/.test(l))).toBe(false);
      const after = join(dir, "after-reboot.txt");
      writeFileSync(after, "second boot\n");
      const copy = await cli(host, ["copy-to", "--without-progress", NAME, after]);
      expect([copy.code, copy.stderr]).toEqual([0, ""]);
      // The same name again: the VM keeps the first copy (as qfile-unpacker: EEXIST), nothing
      // is overwritten.
      writeFileSync(join(dir, "report.txt"), "an attempt to overwrite\n");
      const again = await cli(host, ["copy-to", "--without-progress", NAME, join(dir, "report.txt")]);
      expect(again.code).not.toBe(0);
      expect(await guest.powerOff(5 * MIN)).toBe(0);

      // The disk after both boots: the token is used up, one host is pinned, both copies landed
      // and the first was not overwritten.
      const raw = join(dir, "after.raw");
      flatten(disk, raw);
      const stat = (p: string) =>
        spawnSync("debugfs", ["-R", `stat ${p}`, raw], {
          env: { PATH: `/usr/sbin:/sbin:${process.env.PATH}` },
        });
      expect(stat(PATHS.token).stderr.toString()).toContain("File not found");
      const hosts = JSON.parse(catIn(raw, 0, join(PATHS.stateDir, "hosts.json")));
      expect(hosts.hosts).toHaveLength(1);
      const incoming = `${incomingDir}/${localQubeName()}`;
      expect(catIn(raw, 0, `${incoming}/report.txt`)).toBe(`copied to ${NAME} ${token.slice(0, 8)}\n`);
      expect(catIn(raw, 0, `${incoming}/after-reboot.txt`)).toBe("second boot\n");
    },
    20 * MIN,
  );
});
