/**
 * copy-to and copy-from under real faults mid-transfer (issue 9, point 1): the link cut (a TCP
 * fault proxy between the daemon and the agent), the daemon killed, the agent killed. The fault
 * is triggered by an event, never a timer: when enough of the copy has gone through the proxy.
 * Each copy must end promptly (no hang, no spin) with one clear line and 125, no stack trace,
 * and leave nothing partial: on the host the destination holds only complete files; on the
 * device an interrupted receiver removes its temporary file, and a killed agent's leftovers are
 * removed at its next start-up.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { isQubeName } from "../../core/qrexec/names.ts";
import {
  type Agent,
  BUN,
  cleanup,
  cli,
  DEVICE,
  type Host,
  type Logged,
  makeHost,
  pairToken,
  ROOT,
  spawnLogged,
  startAgent,
  startDaemon,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";
import { startTcpFaultProxy, type TcpFaultProxy } from "../../fixtures/tcp-fault-proxy.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const here = isQubeName(hostname()) ? hostname() : "sys-remote";
/** Big enough that the fault lands well inside the transfer (progress every 15 MB). */
const BIG = 40 * 1024 * 1024;
/** The fault fires once this much of the copy has gone through the proxy. */
const TRIGGER = 8 * 1024 * 1024;
/** A copy must end within this after the fault (generous: the machine may be busy). */
const END_WITHIN_MS = 10_000;

const proxies: TcpFaultProxy[] = [];
afterAll(async () => {
  for (const p of proxies) await p.close();
});

interface Setup {
  agent: Agent;
  host: Host;
  daemon: Logged;
  proxy: TcpFaultProxy;
}

/** An agent, a daemon paired with it through a fault proxy, the link up. */
async function setup(daemonArgs: string[] = []): Promise<Setup> {
  const agent = await startAgent();
  const proxy = await startTcpFaultProxy(agent.port!);
  proxies.push(proxy);
  const token = await pairToken(agent);
  const host = makeHost();
  const daemon = await startDaemon(host, daemonArgs);
  const r = await cli(host, ["pair", DEVICE, "--tcp", `127.0.0.1:${proxy.port}`, "--token", token]);
  if (r.code !== 0) throw new Error(`pair failed: ${r.stderr}`);
  await daemon.waitLine(new RegExp(`${DEVICE}: up`));
  return { agent, host, daemon, proxy };
}

type Fault = "cut" | "daemon" | "agent";

function inject(s: Setup, fault: Fault): void {
  if (fault === "cut") s.proxy.cut();
  else if (fault === "daemon") s.daemon.proc.kill("SIGKILL");
  else s.agent.proc.kill("SIGKILL");
}

/** utime + stime of a live process, in clock ticks (/proc/<pid>/stat fields 14 and 15). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

/**
 * The copy's exit status, once it ended. If it is still running after END_WITHIN_MS the test
 * fails, saying how much CPU it used meanwhile (a spin shows as ~100 ticks a second).
 */
async function endsPromptly(copy: Logged): Promise<{ code: number; ms: number }> {
  const pid = copy.proc.pid;
  const start = performance.now();
  const ticks = cpuTicks(pid);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), END_WITHIN_MS);
  });
  const code = await Promise.race([copy.exited, deadline]);
  clearTimeout(timer);
  if (code === null) {
    const used = cpuTicks(pid) - ticks;
    copy.proc.kill("SIGKILL");
    throw new Error(`the copy still ran ${END_WITHIN_MS} ms after the fault, using ${used} CPU ticks`);
  }
  return { code, ms: Math.round(performance.now() - start) };
}

/** The copy's stderr without its progress updates ("\rsent X/Y KiB" / "\rreceived X KiB"). */
function messages(copy: Logged): string[] {
  return copy.lines
    .map((l) => l.split("\r").at(-1)!)
    .filter((l) => l !== "" && !/^(sent \d+\/\d+|received \d+) KiB$/.test(l));
}

function expectOneClearLine(copy: Logged, re: RegExp): void {
  const lines = messages(copy);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(re);
  expect(lines.join("\n")).not.toMatch(/\n\s+at |node:|error:|Error/);
}

function partFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((n) => /\.qfile-.*\.part$/.test(n));
}

function startCopy(host: Host, args: string[]): Logged {
  return spawnLogged([BUN, join(ROOT, "host/main.ts"), ...args], host.env);
}

const BROKE = /^qubes-air: the copy (to|from) pi-gpg broke off: the link or the daemon went away/;

let bigSource: string | null = null;
function bigFile(): string {
  if (bigSource === null) {
    const dir = tempDir("qa-copy-src-");
    bigSource = join(dir, "big.bin");
    writeFileSync(bigSource, randomBytes(BIG));
  }
  return bigSource;
}

describe("copy-to: a fault mid-copy ends it with 125, one line, and nothing partial", () => {
  for (const fault of ["cut", "daemon", "agent"] as const) {
    test(`${fault === "cut" ? "link cut" : `${fault} killed`} mid-copy`, async () => {
      const s = await setup();
      const copy = startCopy(s.host, ["copy-to", DEVICE, bigFile()]);
      await s.proxy.whenBytes("up", TRIGGER);
      inject(s, fault);
      const { code, ms } = await endsPromptly(copy);
      expect(code).toBe(EXIT.CALL_PROBLEM);
      expectOneClearLine(copy, BROKE);
      console.log(`copy-to, ${fault}: exit ${code} ${ms} ms after the fault`);
      const incoming = join(s.agent.dir, "home", "QubesIncoming", here);
      expect(existsSync(join(incoming, "big.bin"))).toBe(false);
      if (fault === "agent") {
        // The killed receiver could not clean up; the next start-up does, and says so.
        expect(partFiles(incoming)).toHaveLength(1);
        const restarted = await startAgent({ dir: s.agent.dir });
        // (startAgent waited for "listening", which comes after the sweep's line)
        expect(restarted.lines.filter((l) => / incoming-cleanup /.test(l))).toEqual([
          `qubes-air-agent: incoming-cleanup dir=${join(s.agent.dir, "home", "QubesIncoming")} removed=1`,
        ]);
        expect(partFiles(incoming)).toEqual([]);
      } else {
        // The receiver saw its input end, removed its temporary file, then logged the call.
        await s.agent.waitLine(/ call(-failed)? .*service=qubes\.Filecopy/);
        expect(partFiles(incoming)).toEqual([]);
      }
    });
  }
});

describe("copy-from: a fault mid-copy ends it with 125, one line, and only complete files", () => {
  for (const fault of ["cut", "daemon", "agent"] as const) {
    test(`${fault === "cut" ? "link cut" : `${fault} killed`} mid-copy`, async () => {
      const s = await setup();
      const exported = join(s.agent.dir, "home", "QubesOutgoing");
      mkdirSync(exported, { recursive: true });
      writeFileSync(join(exported, "a-small.txt"), "complete\n");
      writeFileSync(join(exported, "big.bin"), readFileSync(bigFile()));
      const to = join(tempDir(), "in");
      const copy = startCopy(s.host, ["copy-from", DEVICE, "a-small.txt", "big.bin", "--to", to]);
      await s.proxy.whenBytes("down", TRIGGER);
      inject(s, fault);
      const { code, ms } = await endsPromptly(copy);
      expect(code).toBe(EXIT.CALL_PROBLEM);
      expectOneClearLine(copy, BROKE);
      console.log(`copy-from, ${fault}: exit ${code} ${ms} ms after the fault`);
      expect(readdirSync(to)).toEqual(["a-small.txt"]);
      expect(readFileSync(join(to, "a-small.txt"), "utf8")).toBe("complete\n");
    });
  }
});

describe("copies interrupted", () => {
  test("copy-to, Ctrl-C mid-copy: exit 130, one line, the device keeps nothing partial", async () => {
    const s = await setup();
    const copy = startCopy(s.host, ["copy-to", DEVICE, bigFile()]);
    await s.proxy.whenBytes("up", TRIGGER);
    copy.proc.kill("SIGINT");
    const { code } = await endsPromptly(copy);
    expect(code).toBe(EXIT.INTERRUPTED);
    expectOneClearLine(
      copy,
      /^qubes-air: copy-to stopped by SIGINT; the device removes what it had half-received$/,
    );
    await s.agent.waitLine(/ call(-failed)? .*service=qubes\.Filecopy/);
    const incoming = join(s.agent.dir, "home", "QubesIncoming", here);
    expect(readdirSync(incoming)).toEqual([]);
  });

  test("copy-from, Ctrl-C mid-copy: exit 130, one line, only complete files, the link still up", async () => {
    const s = await setup();
    const exported = join(s.agent.dir, "home", "QubesOutgoing");
    mkdirSync(exported, { recursive: true });
    writeFileSync(join(exported, "a-small.txt"), "complete\n");
    writeFileSync(join(exported, "big.bin"), readFileSync(bigFile()));
    const to = join(tempDir(), "in");
    const copy = startCopy(s.host, ["copy-from", DEVICE, "a-small.txt", "big.bin", "--to", to]);
    await s.proxy.whenBytes("down", TRIGGER);
    copy.proc.kill("SIGINT");
    const { code } = await endsPromptly(copy);
    expect(code).toBe(EXIT.INTERRUPTED);
    expectOneClearLine(copy, /^qubes-air: copy-from stopped by SIGINT; incomplete files were not kept$/);
    expect(readdirSync(to)).toEqual(["a-small.txt"]);
    // the device's sender was stopped, and the link serves the next copy
    const again = await cli(s.host, ["copy-from", DEVICE, "a-small.txt", "--to", join(tempDir(), "again")]);
    expect([again.code, again.stderr]).toEqual([0, ""]);
  });
});

describe("copy-from killed with SIGKILL", () => {
  test("its one leftover .part is removed by the next copy-from into that directory; nothing else is touched", async () => {
    const s = await setup();
    const exported = join(s.agent.dir, "home", "QubesOutgoing");
    mkdirSync(exported, { recursive: true });
    writeFileSync(join(exported, "a-small.txt"), "complete\n");
    writeFileSync(join(exported, "big.bin"), readFileSync(bigFile()));
    const to = join(tempDir(), "in");
    mkdirSync(to, { recursive: true });
    // The user's own files that merely look like ours stay.
    const users = [".qfile-0123456789abcdef.part", "notes.part", ".qfile-1-draft.part"];
    for (const n of users) writeFileSync(join(to, n), "mine\n");
    const copy = startCopy(s.host, ["copy-from", DEVICE, "a-small.txt", "big.bin", "--to", to]);
    await s.proxy.whenBytes("down", TRIGGER);
    copy.proc.kill("SIGKILL"); // no chance to clean up
    await copy.exited;
    const left = partFiles(to).filter((n) => !users.includes(n));
    expect(left).toEqual([
      expect.stringMatching(new RegExp(`^\\.qfile-${copy.proc.pid}-[0-9a-f]{16}\\.part$`)),
    ]);
    const again = await cli(s.host, ["copy-from", DEVICE, "a-small.txt", "--to", to]);
    // a-small.txt is already there from the killed run: refused, never overwritten (exit 1).
    expect(again.stderr).toMatch(/removed 1 incomplete file\(s\) an interrupted copy-from left in /);
    expect(partFiles(to).filter((n) => !users.includes(n))).toEqual([]);
    for (const n of users) expect(readFileSync(join(to, n), "utf8")).toBe("mine\n");
    expect(readFileSync(join(to, "a-small.txt"), "utf8")).toBe("complete\n");
  });
});

describe("a link that stalls past the keepalive mid-copy", () => {
  // Keepalive 1 s: the daemon gives the session up after 3 s of silence (3 missed keepalives).
  for (const direction of ["to", "from"] as const) {
    test(`copy-${direction}: ends with 125 and one line once the daemon gives the link up`, async () => {
      const s = await setup(["--keepalive-ms", "1000"]);
      const to = join(tempDir(), "in");
      let copy: Logged;
      if (direction === "to") {
        copy = startCopy(s.host, ["copy-to", DEVICE, bigFile()]);
        await s.proxy.whenBytes("up", TRIGGER);
      } else {
        const exported = join(s.agent.dir, "home", "QubesOutgoing");
        mkdirSync(exported, { recursive: true });
        writeFileSync(join(exported, "big.bin"), readFileSync(bigFile()));
        copy = startCopy(s.host, ["copy-from", DEVICE, "big.bin", "--to", to]);
        await s.proxy.whenBytes("down", TRIGGER);
      }
      s.proxy.stall();
      const { code, ms } = await endsPromptly(copy);
      console.log(`copy-${direction}, stall: exit ${code} ${ms} ms after the stall began`);
      expect(code).toBe(EXIT.CALL_PROBLEM);
      expectOneClearLine(copy, BROKE);
      if (direction === "from") expect(readdirSync(to)).toEqual([]);
      // The line works again: the agent gets the rest of what was sent and then the daemon's
      // close, so its receiver (copy-to) or sender (copy-from) ends and leaves nothing.
      s.proxy.pass();
      const service = direction === "to" ? "qubes\\.Filecopy" : "qubesair\\.CopyFrom";
      await s.agent.waitLine(new RegExp(` call(-failed)? .*service=${service}`), 60_000);
      expect(partFiles(join(s.agent.dir, "home", "QubesIncoming"))).toEqual([]);
      // and the daemon reconnects: the next copy goes through
      await s.daemon.waitLine(new RegExp(`${DEVICE}: up`), 60_000);
      const small = join(tempDir(), "after.txt");
      writeFileSync(small, "after\n");
      const again = await cli(s.host, ["copy-to", DEVICE, small]);
      expect([again.code, again.stderr]).toEqual([0, ""]);
    });
  }
});
