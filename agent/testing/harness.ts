/**
 * Test harness for test/integration/agent-*.test.ts (not part of the agent; nothing in
 * agent/main.ts imports it): runs the real agent as a process in a temporary directory and
 * plays the host side in the test process with the core modules (connectAsInitiator + runCall
 * over tcpConnect), since the real host daemon is separate work.
 * Waiting is event-driven (log lines, process exit): no sleeps.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import { makeResolver } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { type Connected, connectAsInitiator } from "../../core/session/establish.ts";
import type { HandshakeMode } from "../../core/session/messages.ts";
import { generateStaticKeyPair, type StaticKeyPair } from "../../core/session/key-text.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { platform } from "../../platform/index.ts";
import { nativeCiphers } from "../../platform/native-aead.ts";
import type { ChildProcess } from "../../platform/platform.ts";
import { rankLinkSuites } from "../../platform/suite-ranking.ts";
import { runCall } from "../../runtime/call-client.ts";
import { tcpConnect } from "../../transport/tcp.ts";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const MAIN = resolve(HERE, "../main.ts");
export const DEVICE = "pi-gpg";
const DEFAULT_POLICY = resolve(HERE, "../default-policy/50-qubes-air.policy");

export interface AgentOptions {
  /** Extra policy files: name -> text (the shipped default is always there as 50-qubes-air). */
  policy?: Record<string, string>;
  /** Service scripts (made executable): file name -> text. */
  services?: Record<string, string>;
  /** Merged into the config. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Reuse a directory (restart the agent with the same state). */
  dir?: string;
}

export interface AgentProcess {
  readonly dir: string;
  readonly configPath: string;
  readonly socket: string;
  readonly port: number;
  readonly proc: ChildProcess;
  readonly lines: string[];
  /** The next log line (from the start, or after the last one matched) matching `re`. */
  waitLine(re: RegExp): Promise<RegExpMatchArray>;
  readonly exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();
const dirs = new Set<string>();

export function cleanup(): void {
  for (const p of running) p.kill("SIGKILL");
  running.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/** Starts `bun agent/main.ts ARGS` (the runtime running this test) through the platform layer. */
export async function spawnAgentCli(args: string[], env: Record<string, string> = {}): Promise<ChildProcess> {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) merged[k] = v;
  const p = await platform.spawn([process.execPath, MAIN, ...args], { env: merged });
  running.add(p);
  void p.exited.then(() => running.delete(p));
  return p;
}

async function readAll(source: ChildProcess["stdout"], onText: (s: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  if (!source) return;
  for (let c = await source.read(); c !== null; c = await source.read()) onText(decoder.decode(c, { stream: true }));
}

export function makeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "qa-agent-"));
  dirs.add(dir);
  return dir;
}

export function writeAgentFiles(o: AgentOptions): { dir: string; configPath: string } {
  const dir = o.dir ?? makeDir();
  for (const sub of ["policy", "rpc", "home", "state"]) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  chmodSync(join(dir, "state"), 0o700);
  writeFileSync(join(dir, "policy", "50-qubes-air.policy"), readFileSync(DEFAULT_POLICY, "utf8"));
  for (const [name, text] of Object.entries(o.policy ?? {})) writeFileSync(join(dir, "policy", name), text);
  for (const [name, text] of Object.entries(o.services ?? {})) {
    writeFileSync(join(dir, "rpc", name), text);
    chmodSync(join(dir, "rpc", name), 0o755);
  }
  const config = {
    name: DEVICE,
    stateDir: join(dir, "state"),
    listen: { tcp: "127.0.0.1:0" },
    serviceDirs: [join(dir, "rpc")],
    policyDir: join(dir, "policy"),
    incomingDir: join(dir, "home"),
    socket: join(dir, "agent.sock"),
    handshakeMinIntervalMs: 0,
    ...o.config,
  };
  const configPath = join(dir, "agent.json");
  writeFileSync(configPath, JSON.stringify(config));
  return { dir, configPath };
}

export async function runCli(args: string[], env: Record<string, string> = {}, stdin?: Uint8Array) {
  const p = await spawnAgentCli(args, env);
  let stdout = "";
  let stderr = "";
  if (stdin) await p.stdin!.write(stdin);
  await p.stdin!.closeWrite();
  await Promise.all([readAll(p.stdout, (t) => (stdout += t)), readAll(p.stderr, (t) => (stderr += t))]);
  const { code } = await p.exited;
  return { code, stdout, stderr };
}

export async function startAgent(o: AgentOptions = {}): Promise<AgentProcess> {
  const { dir, configPath } = writeAgentFiles(o);
  const proc = await spawnAgentCli(["run", "--config", configPath], { HOME: join(dir, "home"), ...o.env });
  void proc.stdin?.closeWrite();
  void readAll(proc.stdout, () => {});
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  let consumed = 0;
  let buffer = "";
  void readAll(proc.stderr, (t) => {
    buffer += t;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      if (process.env.AGENT_LOG) process.stderr.write(`[agent] ${line}\n`);
      for (const w of [...waiters]) {
        const m = line.match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          consumed = lines.length;
          w.resolve(m);
        }
      }
    }
  });
  const exited = proc.exited.then((info) => info.code);
  const waitLine = (re: RegExp) => {
    for (let i = consumed; i < lines.length; i++) {
      const m = lines[i]!.match(re);
      if (m) {
        consumed = i + 1;
        return Promise.resolve(m);
      }
    }
    return new Promise<RegExpMatchArray>((resolve, reject) => {
      waiters.push({ re, resolve });
      void exited.then((code) => reject(new Error(`agent exited (${code}) before ${re}:\n${lines.join("\n")}`)));
    });
  };
  const port = Number((await waitLine(/listening tcp=\S+ port=(\d+)/))[1]);
  return { dir, configPath, socket: join(dir, "agent.sock"), port, proc, lines, waitLine, exited };
}

const resolver = makeResolver(nativeCiphers());
let lastTs = 0n;
/** Strictly increasing µs timestamps for IK message 1. */
export function nextTimestamp(): bigint {
  const t = BigInt(Date.now()) * 1000n;
  lastTs = t > lastTs ? t : lastTs + 1n;
  return lastTs;
}

export interface HostOptions {
  mode: HandshakeMode;
  hostKey: StaticKeyPair;
  token?: Uint8Array;
  deviceKey?: Uint8Array;
  timestamp?: () => bigint;
  onOpen?: (channel: Channel, meta: Uint8Array) => void;
}

export async function connectHost(port: number, o: HostOptions): Promise<Connected> {
  const stream = await tcpConnect("127.0.0.1", port);
  return connectAsInitiator(
    {
      link: new TcpRecordLink(stream),
      resolver,
      staticKey: o.hostKey,
      version: "test-host-1",
      suites: rankLinkSuites(resolver),
      mode: o.mode,
      responderKey: o.deviceKey,
      token: o.token,
      timestamp: o.timestamp ?? nextTimestamp,
    },
    { clock: systemClock, onOpen: o.onOpen ?? ((ch) => ch.close()) },
  );
}

/** Creates a token with the real `pair-token` command and pairs a fresh host key with it. */
export async function pairHost(agent: AgentProcess, onOpen?: HostOptions["onOpen"]) {
  const r = await runCli(["pair-token", "--config", agent.configPath]);
  if (r.code !== 0) throw new Error(`pair-token failed: ${r.stderr}`);
  const token = Uint8Array.from(Buffer.from(r.stdout.trim(), "hex"));
  const hostKey = generateStaticKeyPair();
  const c = await connectHost(agent.port, { mode: "pair-psk", hostKey, token, onOpen });
  await agent.waitLine(/session-up/);
  return { c, hostKey, token, deviceKey: c.established.peerKey };
}

export interface CallResult {
  status: number;
  stdout: Uint8Array;
  stderr: string;
}

/** A call from the host into the device, stdin given whole (small calls). */
export async function hostCall(
  c: Connected,
  request: { source?: string; target?: string; service: string; arg?: string },
  stdin: Uint8Array | string | null = null,
): Promise<CallResult> {
  const channel = c.vchan.open(
    encodeCallRequest({ source: request.source ?? "work", target: request.target ?? DEVICE, service: request.service, arg: request.arg ?? "" }),
  );
  const out = collector();
  const err = collector();
  const input = typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
  const status = await runCall(channel, { stdin: input ? once(input) : null, stdout: out, stderr: err });
  return { status, stdout: out.bytes(), stderr: new TextDecoder().decode(err.bytes()) };
}

export function once(data: Uint8Array): Pick<ByteSource, "read"> {
  let sent = false;
  return { read: async () => (sent ? null : ((sent = true), data)) };
}

export function collector(): Pick<ByteSink, "write"> & { bytes(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    write: async (d) => void parts.push(d.slice()),
    bytes: () => Buffer.concat(parts),
  };
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b);
