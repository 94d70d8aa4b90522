/**
 * A hostile host for test/integration/hostile-peer-*.test.ts: a peer that completes a valid Noise
 * handshake with the real agent (core/session) and then breaks the rules above it: raw vchan
 * messages (core/vchan encoders), records of any kind, channels it never reads, and a byte-exact
 * recording of its handshake for replay. Test-only; the product never imports it.
 * Must never: touch anything but loopback, or wait by sleeping (callers wait on agent log lines).
 */
import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { makeResolver } from "../../core/noise/suites.ts";
import { encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import { type Duplex, systemClock } from "../../core/session/duplex.ts";
import { type Connected, connectAsInitiator } from "../../core/session/establish.ts";
import type { StaticKeyPair, StaticPublicKey } from "../../core/session/key-text.ts";
import type { HandshakeMode } from "../../core/session/messages.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { encodeVchan, type VchanMessage, VchanType } from "../../core/vchan/messages.ts";
import { nativeCiphers } from "../../platform/native-aead.ts";
import { rankLinkSuites } from "../../platform/suite-ranking.ts";
import { tcpConnect } from "../../transport/tcp.ts";
import { type AgentOptions, DEVICE, startAgent } from "./agent/harness.ts";
import { hostCall, nextTimestamp, pairHost, pairingIdFor, text } from "./agent/host-side.ts";

const resolver = makeResolver(nativeCiphers());

export interface HostileOptions {
  mode: HandshakeMode;
  hostKey: StaticKeyPair;
  deviceKey?: StaticPublicKey;
  token?: Uint8Array;
  timestamp?: () => bigint;
  /** Our own channel cap (the agent's is core/wire/limits.ts VCHAN_MAX_CHANNELS). */
  maxChannels?: number;
}

export interface Hostile {
  readonly c: Connected;
  /** Every byte we wrote until the handshake completed (a replay sends exactly these). */
  readonly handshakeBytes: Uint8Array;
  /** One vchan message, encoded by core/vchan, whatever our own channel state says. */
  vchan(m: VchanMessage): Promise<void>;
  /** One session record of kind VCHAN with any body (malformed ones included). */
  rawVchan(body: Uint8Array): Promise<void>;
  /** One session record of any kind. */
  record(bytes: Uint8Array): Promise<void>;
  /** Opens a call channel with this metadata (our vchan's id sequence stays consistent). */
  open(meta: Uint8Array): Channel;
  /** From now on DATA for `channel` is dropped unread: no CREDIT is ever sent for it. */
  neverRead(channel: Channel): void;
  /** Bytes dropped so far by neverRead. */
  readonly dropped: number;
  /** From now on nothing more is read from the TCP socket (the agent's writes back up). */
  stopReading(): void;
  /** Resolves once neverRead has dropped at least `n` bytes in all. */
  droppedAtLeast(n: number): Promise<void>;
}

/** A TCP stream that keeps a copy of what was written while `recording` is true. */
function recording(stream: Duplex): Duplex & { bytes(): Uint8Array; stop(): void; hold(): void } {
  const parts: Uint8Array[] = [];
  let on = true;
  let held = false;
  return {
    read: () => (held ? new Promise<never>(() => {}) : stream.read()),
    hold() {
      held = true;
    },
    write(data) {
      if (on) parts.push(data.slice());
      return stream.write(data);
    },
    close: () => stream.close(),
    bytes: () => Buffer.concat(parts),
    stop() {
      on = false;
    },
  };
}

export async function connectHostile(port: number, o: HostileOptions): Promise<Hostile> {
  const stream = recording(await tcpConnect("127.0.0.1", port));
  const c = await connectAsInitiator(
    {
      link: new TcpRecordLink(stream),
      resolver,
      staticKey: o.hostKey,
      version: "hostile-host-1",
      suites: rankLinkSuites(resolver),
      mode: o.mode,
      responderKey: o.deviceKey,
      token: o.token,
      pairingId: pairingIdFor(o.hostKey),
      timestamp: o.timestamp ?? nextTimestamp,
    },
    { clock: systemClock, onOpen: (ch) => ch.close(), maxChannels: o.maxChannels },
  );
  stream.stop();
  const hoarded = new Set<number>();
  let dropped = 0;
  let readsHeld = false;
  const waiters: { n: number; resolve: () => void }[] = [];
  // The session hands every VCHAN record to c.vchan.receive: DATA for a hoarded channel stops here.
  const receive = c.vchan.receive.bind(c.vchan);
  c.vchan.receive = (record: Uint8Array) => {
    if (readsHeld) return; // the read that was in flight when we stopped reading
    const id = new DataView(record.buffer, record.byteOffset).getUint32(2, false);
    if (record[1] === VchanType.DATA && hoarded.has(id)) {
      dropped += record.length - 6;
      for (const w of waiters.filter((x) => dropped >= x.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      return;
    }
    receive(record);
  };
  // Session.sendRecord is private: the hostile host is exactly the code that must bypass it.
  const sendRecord = (c.session as unknown as { sendRecord(r: Uint8Array): Promise<void> }).sendRecord.bind(
    c.session,
  );
  return {
    c,
    handshakeBytes: stream.bytes(),
    vchan: (m) => c.session.sendVchan(encodeVchan(m)),
    rawVchan: (body) => c.session.sendVchan(Uint8Array.of(1, ...body)),
    record: sendRecord,
    open: (meta) => c.vchan.open(meta),
    neverRead: (channel) => void hoarded.add(channel.id),
    stopReading: () => {
      readsHeld = true;
      stream.hold();
    },
    get dropped() {
      return dropped;
    },
    droppedAtLeast: (n) =>
      dropped >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  };
}

/** Writes `bytes` on a fresh loopback TCP connection and resolves when the agent closes it. */
export function sendRawTcp(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(bytes));
    s.on("data", () => {});
    s.on("error", () => resolve());
    s.on("close", () => resolve());
  });
}

/** A call request (strict CBOR) with our defaults. */
export function callMeta(service: string, arg = "", source = "work", target = DEVICE): Uint8Array {
  return encodeCallRequest({ source, target, service, arg });
}

/** The agent's resident memory in KiB (Linux /proc). */
export function rssKiB(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB$/m);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

export const ECHO_SERVICE = "#!/bin/sh\nprintf 'echo:'\nexec cat\n";

/**
 * The scene of every hostile-peer test: a real agent with an echo service (test.Echo), one
 * well-behaved paired host whose session stays up throughout, and a second paired host key for
 * the attacker (a compromised sys-remote has a pinned key: the attacks below come after a
 * valid handshake).
 */
export async function hostileScene(o: AgentOptions = {}) {
  const agent = await startAgent({
    ...o,
    services: { "test.Echo": ECHO_SERVICE, ...o.services },
    policy: { "20-echo.policy": "test.Echo * @anyvm @anyvm allow\n", ...o.policy },
  });
  const good = await pairHost(agent);
  const bad = await pairHost(agent);
  bad.c.session.close();
  await agent.waitLine(/session-down/);
  const attacker = (o2: Partial<HostileOptions> = {}) =>
    connectHostile(agent.port, { mode: "reconnect", hostKey: bad.hostKey, deviceKey: bad.deviceKey, ...o2 });
  /** The rest of the system is unaffected: the good host's call completes, within `ms`. */
  const stillServes = async (ms = 10_000) => {
    const started = performance.now();
    const r = await hostCall(good.c, { service: "test.Echo" }, "ok");
    expect({ status: r.status, out: text(r.stdout) }).toEqual({ status: 0, out: "echo:ok" });
    expect(performance.now() - started).toBeLessThan(ms);
    expect(process.kill(agent.proc.pid, 0)).toBe(true); // still alive (throws ESRCH if not)
  };
  /** The agent's log never carries `marker` (attacker bytes). */
  const notLogged = (marker: string) => expect(agent.lines.join("\n")).not.toContain(marker);
  return { agent, good, bad, attacker, stillServes, notLogged };
}

/** Attacker bytes that must never reach the log. */
export function marker(): string {
  return `HOSTILE-${Math.random().toString(36).slice(2, 10)}`;
}
