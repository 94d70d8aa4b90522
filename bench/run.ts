/**
 * `bun run bench [-- --json] [-- --quick]`: the figures of DESIGN.md "Performance we aim for",
 * measured side by side in one run on this machine, each sender and receiver a real process:
 *
 *   1. one vchan channel one way over TCP loopback through our link, for both suites
 *      (fixtures/link-peer.ts --sink); again with the agent end as the Node bundle
 *      (bench/node-link.ts: the USB Armory's runtime, native ChaCha20-Poly1305);
 *   2. OpenSSH into `cat > /dev/null` over loopback, per fast cipher (bench/ssh.ts);
 *   3. raw TCP loopback, node:net with no crypto and no framing (bench/raw-tcp-peer.ts);
 *   4. our serial link over a socat pty pair, raw bytes over the same kind of pair with plain
 *      node:fs, and raw bytes through transport/serial.ts alone (bench/raw-pty-peer.ts);
 *   5. IK reconnect handshake time (fresh process, and warm in one process) and agent memory.
 *
 * Output: a table, or with --json one JSON object. Exits non-zero only on an error, never for a
 * missed target. See bench/README.md.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { dh25519 } from "../core/noise/crypto-noble.ts";
import { LINK_SUITES } from "../core/noise/suites.ts";
import { type FixtureProcess, killAll, spawnFixture } from "../fixtures/fixture-process.ts";
import { ptyPair as socatPtyPair } from "../fixtures/pty.ts";
import { cleanup as cleanupCallHarness } from "../fixtures/qubes-stubs/processes.ts";
import { measureCallLatency } from "./call-latency.ts";
import { warmHandshakes } from "./handshake.ts";
import { nodeLink } from "./node-link.ts";
import { findSshd, SSH_CIPHERS, type Sshd, sshTransfer, startSshd } from "./ssh.ts";

const { values: opts } = parseArgs({
  options: {
    json: { type: "boolean" },
    quick: { type: "boolean" },
    seconds: { type: "string" },
    reps: { type: "string" },
    handshakes: { type: "string" },
    "no-ssh": { type: "boolean" },
    "no-serial": { type: "boolean" },
    "no-calls": { type: "boolean" },
    "no-node": { type: "boolean" },
  },
});
const quick = opts.quick === true;
/** Length of one timed transfer. */
const SECONDS = Number(opts.seconds ?? (quick ? 0.4 : 2.5));
/** Repetitions per figure; the median is reported. */
const REPS = Number(opts.reps ?? (quick ? 1 : 3));
const HANDSHAKES = Number(opts.handshakes ?? (quick ? 3 : 20));
const WARMUP_SECONDS = quick ? 0.2 : 0.6;

const ROOT = join(import.meta.dir, "..");
const LINK_PEER = join(ROOT, "fixtures/link-peer.ts");
const RAW_TCP = join(import.meta.dir, "raw-tcp-peer.ts");
const RAW_PTY = join(import.meta.dir, "raw-pty-peer.ts");
const SERIAL_SUITE = "25519_AESGCM_BLAKE2s";

type Event = Record<string, unknown>;
interface Figure {
  /** Median of the runs. */
  mbPerSecond: number;
  runs: number[];
}

const log = (s: string) => process.stderr.write(`${s}\n`);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function figure(runs: number[]): Figure {
  return { mbPerSecond: round(median(runs)), runs: runs.map((r) => round(r)) };
}

/** SIGTERM, then SIGKILL if it has not exited within a second. */
async function stop(p: FixtureProcess): Promise<void> {
  p.proc.kill();
  const timer = setTimeout(() => p.proc.kill("SIGKILL"), 1000);
  await p.exited;
  clearTimeout(timer);
}

async function done(p: FixtureProcess, what: string): Promise<Event> {
  const e = await p.waitFor((x) => x.event === "done" || x.event === "refused", what);
  if (e.event !== "done" || e.ok !== true) {
    throw new Error(`${what}: ${JSON.stringify(e)}\n${(await p.stderr()).slice(0, 2000)}`);
  }
  return e;
}

// --- cleanup of everything we start, also on Ctrl-C ---
const cleanups = new Set<() => void>();
function cleanupAll(): void {
  killAll();
  for (const c of [...cleanups]) {
    try {
      c();
    } catch {
      // best effort
    }
  }
  cleanups.clear();
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    cleanupAll();
    process.exit(130);
  });
}

// --- keys: the agent pins the host; the host reconnects with IK ---
const hostKey = dh25519.generateKeyPair();
const agentKey = dh25519.generateKeyPair();
const agentArgs = [
  "--role",
  "agent",
  "--key",
  hex(agentKey.privateKey),
  "--pin",
  hex(hostKey.publicKey),
  "--sink",
];
const hostArgs = (suite: string) => [
  "--role",
  "host",
  "--key",
  hex(hostKey.privateKey),
  "--mode",
  "reconnect",
  "--peer",
  hex(agentKey.publicKey),
  "--suites",
  suite,
  "--sink",
];

// --- 3. raw TCP ---
async function rawTcp(): Promise<Figure> {
  const sink = spawnFixture(RAW_TCP, ["--role", "sink"]);
  const { port } = await sink.waitFor((e) => e.event === "listening", "raw tcp listening");
  const runs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const src = spawnFixture(RAW_TCP, [
      "--role",
      "source",
      "--connect",
      String(port),
      "--seconds",
      String(SECONDS),
    ]);
    runs.push((await done(src, "raw tcp")).mbPerSecond as number);
  }
  await stop(sink);
  return figure(runs);
}

// --- 1. our link over TCP, and 5. handshakes + agent memory ---
interface OursTcp {
  suites: Record<string, Figure & { handshakeMs: number[] }>;
  agentMemory: { vmHWMKiB: number; vmRSSKiB: number } | null;
  coldHandshakesMs: number[];
}

function procStatus(pid: number): { vmHWMKiB: number; vmRSSKiB: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? Number.NaN);
    return { vmHWMKiB: kib("VmHWM"), vmRSSKiB: kib("VmRSS") };
  } catch {
    return null;
  }
}

async function oursTcp(): Promise<OursTcp> {
  const agent = spawnFixture(LINK_PEER, [...agentArgs, "--listen", "0"]);
  const { port } = await agent.waitFor((e) => e.event === "listening", "agent listening");
  const transfer = async (suite: string, seconds: number) => {
    const host = spawnFixture(LINK_PEER, [
      ...hostArgs(suite),
      "--connect",
      String(port),
      "--seconds",
      String(seconds),
    ]);
    const session = await host.waitFor((e) => e.event === "session", `${suite} session`);
    const d = await done(host, `${suite} transfer`);
    await host.exited;
    return { mb: d.mbPerSecond as number, hs: session.handshakeMs as number };
  };
  const suites: OursTcp["suites"] = {};
  for (const suite of LINK_SUITES) {
    log(`  ours ${suite}...`);
    await transfer(suite, WARMUP_SECONDS); // the agent is a long-running daemon: warm its JIT first
    const runs: number[] = [];
    const hs: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const r = await transfer(suite, SECONDS);
      runs.push(r.mb);
      hs.push(r.hs);
    }
    suites[suite] = { ...figure(runs), handshakeMs: hs.map((h) => round(h, 2)) };
  }
  const agentMemory = procStatus(agent.proc.pid);
  log(`  handshakes (${HANDSHAKES} fresh host processes)...`);
  const cold: number[] = [];
  for (let i = 0; i < HANDSHAKES; i++) {
    const host = spawnFixture(LINK_PEER, [
      ...hostArgs(SERIAL_SUITE),
      "--connect",
      String(port),
      "--bytes",
      "1",
    ]);
    const session = await host.waitFor((e) => e.event === "session", "handshake session");
    await done(host, "handshake transfer");
    cold.push(session.handshakeMs as number);
  }
  await stop(agent);
  return { suites, agentMemory, coldHandshakesMs: cold };
}

// --- 2. OpenSSH ---
interface SshFigures {
  version: string;
  ciphers: Record<string, Figure>;
  best: { cipher: string; mbPerSecond: number };
}

async function ssh(): Promise<SshFigures | { skipped: string }> {
  const sshdPath = findSshd();
  if (!sshdPath) return { skipped: "sshd not installed (apt-get install openssh-server)" };
  let sshd: Sshd | null = null;
  try {
    sshd = await startSshd(sshdPath);
    cleanups.add(sshd.stop);
    const block = new Uint8Array(1 << 20);
    crypto.getRandomValues(block.subarray(0, 65536));
    for (let o = 65536; o < block.length; o += 65536) block.copyWithin(o, 0, 65536);
    const ciphers: Record<string, Figure> = {};
    for (const cipher of SSH_CIPHERS) {
      log(`  ssh ${cipher}...`);
      const runs: number[] = [];
      for (let i = 0; i < REPS; i++) runs.push((await sshTransfer(sshd, cipher, SECONDS, block)).mbPerSecond);
      ciphers[cipher] = figure(runs);
    }
    const [cipher, best] = Object.entries(ciphers).sort((x, y) => y[1].mbPerSecond - x[1].mbPerSecond)[0]!;
    return { version: sshd.version, ciphers, best: { cipher, mbPerSecond: best.mbPerSecond } };
  } finally {
    if (sshd) {
      sshd.stop();
      cleanups.delete(sshd.stop);
    }
  }
}

// --- 4. serial over a pty pair ---
/** A socat pty pair whose socat is also killed by cleanupAll(). */
async function ptyPair(): Promise<{ a: string; b: string; stop(): void }> {
  const pair = await socatPtyPair();
  const kill = () => void pair.close();
  cleanups.add(kill);
  return {
    a: pair.a,
    b: pair.b,
    stop: () => {
      kill();
      cleanups.delete(kill);
    },
  };
}

interface SerialFigures {
  suite: string;
  link: Figure;
  rawPty: Figure;
  transportOnly: Figure;
}

async function serial(): Promise<SerialFigures | { skipped: string }> {
  if (!fs.existsSync(join(ROOT, "transport/serial.ts")))
    return { skipped: "transport/serial.ts not there yet" };
  if (Bun.which("socat") === null) return { skipped: "socat not installed (apt-get install socat)" };
  const rawRuns = async (via: string) => {
    const runs: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const pair = await ptyPair();
      try {
        const args = ["--tty", pair.b, "--seconds", String(SECONDS), "--via", via];
        const reader = spawnFixture(RAW_PTY, ["--role", "reader", ...args]);
        await reader.waitFor((e) => e.event === "ready", "pty reader ready");
        const writer = spawnFixture(RAW_PTY, ["--role", "writer", "--tty", pair.a, "--via", via]);
        runs.push((await done(reader, `pty ${via}`)).mbPerSecond as number);
        await stop(writer);
      } finally {
        pair.stop();
      }
    }
    return runs;
  };
  log("  raw pty...");
  const raw = await rawRuns("fs");
  log("  pty through transport/serial.ts only...");
  const transportOnly = await rawRuns("serial");
  log(`  serial link ${SERIAL_SUITE}...`);
  // One pty pair and one agent for all runs, as a daemon would be: the agent opens the line
  // again after each session, and the first (short) run warms its JIT.
  const link: number[] = [];
  const pair = await ptyPair();
  try {
    const agent = spawnFixture(LINK_PEER, [...agentArgs, "--tty", pair.a]);
    for (let i = 0; i <= REPS; i++) {
      await agent.waitFor((e) => e.event === "listening", "serial agent listening");
      const seconds = i === 0 ? WARMUP_SECONDS : SECONDS;
      const host = spawnFixture(LINK_PEER, [
        ...hostArgs(SERIAL_SUITE),
        "--tty",
        pair.b,
        "--seconds",
        String(seconds),
      ]);
      const d = await done(host, "serial transfer");
      if (i > 0) link.push(d.mbPerSecond as number);
      await host.exited;
    }
    await stop(agent);
  } finally {
    pair.stop();
  }
  return {
    suite: SERIAL_SUITE,
    link: figure(link),
    rawPty: figure(raw),
    transportOnly: figure(transportOnly),
  };
}

// --- report ---
function ratio(x: number | undefined, y: number | undefined): number | null {
  return x !== undefined && y !== undefined && y > 0 ? round(x / y, 3) : null;
}

async function main(): Promise<void> {
  const started = performance.now();
  const loadAtStart = os.loadavg()[0]!;
  log(`bench: ${SECONDS} s per transfer, median of ${REPS}${quick ? " (quick)" : ""}`);
  log("  raw tcp...");
  const rawTcpFig = await rawTcp();
  const ours = await oursTcp();
  const nodeFig = opts["no-node"]
    ? { skipped: "--no-node" }
    : await nodeLink({
        linkPeer: LINK_PEER,
        agentArgs,
        hostArgs,
        seconds: SECONDS,
        warmupSeconds: WARMUP_SECONDS,
        reps: REPS,
        log,
      });
  const sshFig = opts["no-ssh"] ? { skipped: "--no-ssh" } : await ssh();
  const serialFig = opts["no-serial"] ? { skipped: "--no-serial" } : await serial();
  log("  warm handshakes in one process...");
  const warm = await warmHandshakes(HANDSHAKES, quick ? 1 : 5);
  log("  call latency through the relay vs an SSH relay...");
  const calls = opts["no-calls"]
    ? null
    : await measureCallLatency({
        calls: quick ? 10 : 100,
        sshCalls: quick ? 3 : 20,
        noSsh: opts["no-ssh"] === true,
      });

  const [bestSuite, bestFig] = Object.entries(ours.suites).sort(
    (x, y) => y[1].mbPerSecond - x[1].mbPerSecond,
  )[0]!;
  const sshBest = "best" in sshFig ? sshFig.best : null;
  const serialOk = "link" in serialFig ? serialFig : null;
  const ratios = {
    oursBestOverSshBest: ratio(bestFig.mbPerSecond, sshBest?.mbPerSecond),
    oursBestOverRawTcp: ratio(bestFig.mbPerSecond, rawTcpFig.mbPerSecond),
    serialOverRawPty: ratio(serialOk?.link.mbPerSecond, serialOk?.rawPty.mbPerSecond),
  };
  const targets = [
    { name: "ours_best / ssh_best", value: ratios.oursBestOverSshBest, target: 1.0 },
    { name: "serial / raw_pty", value: ratios.serialOverRawPty, target: 0.8 },
    { name: "ssh_per_call_p50 / relay_call_p50", value: calls?.perCallRatio ?? null, target: 20 },
  ].map((t) => ({ ...t, met: t.value === null ? null : t.value >= t.target }));

  const cpus = os.cpus();
  const report = {
    machine: {
      cpu: cpus[0]?.model ?? "unknown",
      cpus: cpus.length,
      bun: Bun.version,
      kernel: os.release(),
      openssh: "version" in sshFig ? sshFig.version : null,
      /** 1-minute load average: above ~0.5 on this 2-CPU VM, something else competed for the CPUs. */
      loadAverageAtStart: round(loadAtStart, 2),
      loadAverageAtEnd: round(os.loadavg()[0]!, 2),
    },
    settings: { quick, secondsPerTransfer: SECONDS, reps: REPS, handshakes: HANDSHAKES },
    ours: {
      tcp: Object.fromEntries(
        Object.entries(ours.suites).map(([s, f]) => [s, { mbPerSecond: f.mbPerSecond, runs: f.runs }]),
      ),
      best: { suite: bestSuite, mbPerSecond: bestFig.mbPerSecond },
      /** The agent end as the Node bundle (USB Armory), the host end on Bun. */
      tcpAgentOnNode: "suites" in nodeFig ? nodeFig : null,
      tcpAgentOnNodeSkipped: "skipped" in nodeFig ? nodeFig.skipped : null,
    },
    ssh: "best" in sshFig ? { version: sshFig.version, ciphers: sshFig.ciphers, best: sshFig.best } : null,
    sshSkipped: "skipped" in sshFig ? sshFig.skipped : null,
    rawTcp: rawTcpFig,
    serial: serialOk ?? { suite: null, link: null, rawPty: null, transportOnly: null },
    serialSkipped: "skipped" in serialFig ? serialFig.skipped : null,
    handshake: {
      ikColdProcessMedianMs: round(median(ours.coldHandshakesMs), 2),
      ikColdProcessSamplesMs: ours.coldHandshakesMs.map((h) => round(h, 2)),
      ikWarmMedianMs: round(median(warm), 2),
      ikWarmSamplesMs: warm.map((h) => round(h, 2)),
    },
    agentMemory: ours.agentMemory,
    callLatency: calls,
    ratios,
    targets,
    durationSeconds: round((performance.now() - started) / 1000),
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const rows: [string, string][] = [];
  const mb = (f: { mbPerSecond: number; runs?: number[] } | null | undefined) =>
    f
      ? `${f.mbPerSecond.toFixed(1).padStart(8)} MB/s${f.runs && f.runs.length > 1 ? `   runs ${f.runs.join(", ")}` : ""}`
      : "     n/a";
  rows.push(["One channel, one way, TCP loopback", ""]);
  for (const [s, f] of Object.entries(ours.suites)) rows.push([`  ours ${s}`, mb(f)]);
  if ("ciphers" in sshFig)
    for (const [c, f] of Object.entries(sshFig.ciphers)) rows.push([`  ssh ${c}`, mb(f)]);
  else rows.push(["  ssh", `     n/a (${sshFig.skipped})`]);
  if ("suites" in nodeFig)
    for (const [s, f] of Object.entries(nodeFig.suites))
      rows.push([`  ours ${s}, agent on ${nodeFig.node}`, mb(f)]);
  else rows.push(["  ours, agent on Node", `     n/a (${nodeFig.skipped})`]);
  rows.push(["  raw TCP (node:net, no crypto)", mb(rawTcpFig)]);
  rows.push(["Serial over a socat pty pair", ""]);
  if (serialOk) {
    rows.push([`  ours serial ${serialOk.suite}`, mb(serialOk.link)]);
    rows.push(["  raw pty (node:fs)", mb(serialOk.rawPty)]);
    rows.push(["  transport/serial.ts alone (no framing/crypto)", mb(serialOk.transportOnly)]);
  } else rows.push(["  serial", `     n/a (${"skipped" in serialFig ? serialFig.skipped : ""})`]);
  rows.push(["IK reconnect handshake", ""]);
  rows.push([
    "  fresh host process (median)",
    `${report.handshake.ikColdProcessMedianMs.toFixed(2).padStart(8)} ms`,
  ]);
  rows.push([
    "  warm, both ends in one process",
    `${report.handshake.ikWarmMedianMs.toFixed(2).padStart(8)} ms`,
  ]);
  if (ours.agentMemory) {
    rows.push(["Agent memory after the transfers", ""]);
    rows.push(["  VmHWM (peak RSS)", `${(ours.agentMemory.vmHWMKiB / 1024).toFixed(1).padStart(8)} MiB`]);
    rows.push(["  VmRSS", `${(ours.agentMemory.vmRSSKiB / 1024).toFixed(1).padStart(8)} MiB`]);
  }
  if (calls) {
    const p = (x: { p50Ms: number; p99Ms: number } | null) =>
      x ? `p50 ${x.p50Ms.toFixed(1).padStart(6)} ms   p99 ${x.p99Ms.toFixed(1)} ms` : "     n/a";
    rows.push(["Call latency (a service call, one fresh process each)", ""]);
    rows.push(["  relay qubesair.NoiseProxy (compiled)", p(calls.relay)]);
    rows.push(["  ssh per call", p(calls.sshPerCall)]);
    rows.push(["  ssh with a multiplexed master", p(calls.sshMultiplexed)]);
  }
  rows.push(["Ratios", ""]);
  const fmt = (v: number | null) => (v === null ? "n/a" : v.toFixed(2));
  rows.push(["  ours best / ssh best", fmt(ratios.oursBestOverSshBest)]);
  rows.push(["  ours best / raw TCP", fmt(ratios.oursBestOverRawTcp)]);
  rows.push(["  serial / raw pty", fmt(ratios.serialOverRawPty)]);
  rows.push(["  ssh per call / relay (p50)", fmt(calls?.perCallRatio ?? null)]);
  rows.push(["  ssh multiplexed / relay (p50)", fmt(calls?.multiplexedRatio ?? null)]);
  rows.push([`  (ours best: ${bestSuite}; ssh best: ${sshBest?.cipher ?? "n/a"})`, ""]);
  const width = Math.max(...rows.map((r) => (r[1] ? r[0].length : 0))) + 2;
  const out = [
    `qubes-air bench: ${report.machine.cpu}, ${report.machine.cpus} CPUs, Bun ${report.machine.bun}` +
      `${report.machine.openssh ? `, ${report.machine.openssh}` : ""}`,
    `${SECONDS} s per transfer, median of ${REPS}; took ${report.durationSeconds} s; ` +
      `load average ${report.machine.loadAverageAtStart} at start, ${report.machine.loadAverageAtEnd} at end`,
    "",
    ...rows.map(([k, v]) => (v ? `${k.padEnd(width)}${v}` : k)),
    "",
    'Targets (DESIGN.md "Performance we aim for"):',
    ...targets.map(
      (t) =>
        `  ${t.name} >= ${t.target}: ${t.value === null ? "not measured" : `${t.value.toFixed(2)} ${t.met ? "met" : "MISSED"}`}`,
    ),
  ];
  process.stdout.write(`${out.join("\n")}\n`);
}

try {
  await main();
} catch (e) {
  log(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
} finally {
  cleanupAll();
  cleanupCallHarness();
}
process.exit(process.exitCode ?? 0);
