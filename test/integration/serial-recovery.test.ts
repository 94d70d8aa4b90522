/**
 * Serial recovery with the real agent and host daemon on a faulty line (fixtures/line-bridge.ts
 * between two pty pairs): one corrupt or lost frame in either direction is noticed by both ends
 * within 2 s and a small call succeeds within 2 s; a stall during a 16 MiB transfer past the
 * keepalive gives the caller 125, leaves both processes responsive, and the link is back within
 * 2 s after the stall, with a new transfer byte-identical. Times are printed (SERIAL_TIMES=1) for
 * the report. Waits are on log lines and exits; only the stall itself is timed.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Direction, type LineBridge, lineBridge } from "../../fixtures/line-bridge.ts";
import { hasSocat } from "../../fixtures/pty.ts";
import {
  type Agent,
  BUN,
  buildRelay,
  cleanup,
  cli,
  DEVICE,
  type Host,
  type Logged,
  makeHost,
  pairToken,
  ROOT,
  type RunResult,
  run,
  runRelayAs,
  startAgent,
  startDaemon,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";

setDefaultTimeout(120_000);

/** What the issue asks for: notice within 2 s, and back within 2 s. */
const BOUND_MS = 2000;
/** Past the serial keepalive (1.5 s) by far; a stall is a timed fault by nature. */
const STALL_MS = 5000;
/** Deadline for a log line we expect well within BOUND_MS (generous: the machine is shared). */
const WAIT_MS = 20_000;

let bridge: LineBridge;
let relay: string;
let agent: Agent;
let host: Host;
let daemon: Logged;

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const now = () => performance.now();
const report = (what: string, fields: Record<string, number>) => {
  if (process.env.SERIAL_TIMES) {
    const f = Object.entries(fields).map(([k, v]) => `${k}=${v.toFixed(0)}ms`);
    process.stderr.write(`serial-times ${what} ${f.join(" ")}\n`);
  }
};

const step = (what: string) => {
  if (process.env.QA_TEST_LOG) process.stderr.write(`[test] ${what}\n`);
};

const echo = (stdin: Uint8Array | string): Promise<RunResult> =>
  runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin });

/**
 * The relay as runRelayAs runs it, with a big stdin from a file: writing 16 MiB into the relay's
 * stdin pipe from this process can block this process's event loop while the relay (stalled by
 * the line) does not read, and then nothing here runs, the bridge included.
 */
async function bigEcho(data: Uint8Array): Promise<{ code: number; bytes: Uint8Array }> {
  const argument = `${DEVICE}+test.Echo+`;
  const input = join(tempDir("qa-stdin-"), "in");
  writeFileSync(input, data);
  const proc = Bun.spawn([relay, argument], {
    env: {
      ...host.env,
      QREXEC_SERVICE_ARGUMENT: argument,
      QREXEC_REMOTE_DOMAIN: "work",
      QREXEC_SERVICE_FULL_NAME: `qubesair.NoiseProxy+${argument}`,
      QUBESDB_STUB: `/remote/${DEVICE}=${DEVICE}`,
    },
    stdin: Bun.file(input),
    stdout: "pipe",
    stderr: "ignore",
  });
  const [out, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), proc.exited]);
  return { code, bytes: new Uint8Array(out) };
}

/** Calls until one succeeds (each failure is an event: the relay's exit), at most `tries`. */
async function firstGoodCall(tries = 200): Promise<RunResult> {
  let last: RunResult | null = null;
  for (let i = 0; i < tries; i++) {
    last = await echo("ping\n");
    if (last.code === 0) return last;
  }
  throw new Error(`no call succeeded: ${last?.code} ${last?.stderr}`);
}

async function healthy(): Promise<void> {
  const r = await echo("healthy\n");
  expect([r.code, r.stdout]).toEqual([0, "healthy\n"]);
}

// Under CI a missing socat fails these tests (ptyPair says why) instead of skipping them.
describe.skipIf(!hasSocat() && process.env.CI !== "true")(
  "serial recovery through a faulty line (real agent and daemon)",
  () => {
    beforeAll(async () => {
      bridge = await lineBridge();
      agent = await startAgent({ tty: bridge.a });
      const token = await pairToken(agent);
      host = makeHost();
      [relay, daemon] = await Promise.all([buildRelay(), startDaemon(host)]);
      const paired = await cli(host, ["pair", DEVICE, "--serial", bridge.b, "--token", token]);
      if (paired.code !== 0) throw new Error(paired.stderr);
      await daemon.waitLine(/pi-gpg: up/, WAIT_MS);
    }, 120_000);
    afterAll(async () => {
      cleanup();
      await bridge?.close();
    });

    const faults: [string, Direction, (d: Direction) => Promise<void>][] = [
      ["a corrupt frame host→agent", "ba", (d) => bridge.corruptNext(d)],
      ["a corrupt frame agent→host", "ab", (d) => bridge.corruptNext(d)],
      ["a lost frame host→agent", "ba", (d) => bridge.dropNext(d)],
      ["a lost frame agent→host", "ab", (d) => bridge.dropNext(d)],
    ];
    for (const [name, dir, fault] of faults) {
      test(`${name}: both ends notice within 2 s, and a small call succeeds within 2 s`, async () => {
        await healthy();
        // Armed while idle: the next frame is a keepalive (or its answer).
        const applied = fault(dir);
        await applied;
        const t0 = now();
        const agentSaw = agent.waitLine(/session-down .*code=(\S+)/, WAIT_MS).then(() => now() - t0);
        const hostSaw = daemon.waitLine(/pi-gpg: down: (\S+)/, WAIT_MS).then(() => now() - t0);
        const [agentMs, hostMs] = await Promise.all([agentSaw, hostSaw]);
        await daemon.waitLine(/pi-gpg: up/, WAIT_MS);
        const upMs = now() - t0;
        const r = await firstGoodCall();
        const callMs = now() - t0;
        expect(r.stdout).toBe("ping\n");
        report(name, { agent: agentMs, host: hostMs, up: upMs, call: callMs });
        expect(agentMs).toBeLessThan(BOUND_MS);
        expect(hostMs).toBeLessThan(BOUND_MS);
        expect(callMs).toBeLessThan(BOUND_MS);
      });
    }

    const stalls: [string, Direction | "both"][] = [
      ["both directions", "both"],
      ["host→agent only", "ba"],
      ["agent→host only", "ab"],
    ];
    for (const [which, dir] of stalls)
      test(`a stall past the keepalive (${which}) during a 16 MiB transfer: 125 for the caller, both ends stay responsive, back within 2 s, next transfer intact`, async () => {
        await healthy();
        const data = randomBytes(16 * 1024 * 1024);
        const big = bigEcho(data);
        await bridge.forwarded("ba", 2 * 1024 * 1024); // the transfer is under way
        const t0 = now();
        const stallOver = bridge.stall(STALL_MS, dir);
        const agentSaw = agent.waitLine(/session-down .*code=(\S+)/, WAIT_MS).then(() => now() - t0);
        const hostSaw = daemon.waitLine(/pi-gpg: down: (\S+)/, WAIT_MS).then(() => now() - t0);
        const caller = big.then((r) => ({ r, ms: now() - t0 }));
        const [agentMs, hostMs] = await Promise.all([agentSaw, hostSaw]);
        // Both processes answer while the line is still stalled: the daemon its CLI, the agent a
        // device-side call (refused with 125 at once: not connected).
        step("both noticed");
        const listed = await cli(host, ["list"]);
        step("list answered");
        const listMs = now() - t0;
        const fromDevice = await run(
          [BUN, `${ROOT}/agent/main.ts`, "call", "--config", agent.configPath, "--", "work", "test.Echo"],
          {},
          "x",
        );
        const deviceCallMs = now() - t0;
        step("device call answered");
        const { r, ms: callerMs } = await caller;
        step("caller ended");
        expect(listed.code).toBe(0);
        expect(fromDevice.code).toBe(125);
        expect(deviceCallMs).toBeLessThan(STALL_MS); // answered during the stall
        expect(r.code).toBe(125);
        await stallOver;
        const t1 = now();
        await daemon.waitLine(/pi-gpg: up/, WAIT_MS);
        const upMs = now() - t1;
        const again = await firstGoodCall();
        const callMs = now() - t1;
        expect(again.stdout).toBe("ping\n");
        const second = await bigEcho(data);
        expect(second.code).toBe(0);
        expect(sha(second.bytes)).toBe(sha(data));
        report(`stall (${which}) during 16 MiB`, {
          agent: agentMs,
          host: hostMs,
          caller125: callerMs,
          list: listMs,
          deviceCall: deviceCallMs,
          upAfterStall: upMs,
          callAfterStall: callMs,
        });
        expect(agentMs).toBeLessThan(BOUND_MS);
        expect(hostMs).toBeLessThan(BOUND_MS);
        expect(upMs).toBeLessThan(BOUND_MS);
        expect(callMs).toBeLessThan(BOUND_MS);
      });
  },
);
