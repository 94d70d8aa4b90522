/**
 * The host side for test/integration/agent-*.test.ts, in the test process: the core modules
 * (connectAsInitiator + runCall over tcpConnect or a tty) instead of the real host daemon, so
 * the tests control every byte the agent sees.
 */

import { runCall } from "../../../calls/caller.ts";
import { makeResolver } from "../../../core/noise/suites.ts";
import { encodeCallRequest } from "../../../core/qrexec/call-protocol.ts";
import { systemClock } from "../../../core/session/duplex.ts";
import { type Connected, connectAsInitiator } from "../../../core/session/establish.ts";
import {
  generateStaticKeyPair,
  type StaticKeyPair,
  type StaticPublicKey,
} from "../../../core/session/key-text.ts";
import type { HandshakeMode } from "../../../core/session/messages.ts";
import { SerialRecordLink } from "../../../core/session/serial-record-link.ts";
import { TcpRecordLink } from "../../../core/session/tcp-record-link.ts";
import type { Channel } from "../../../core/vchan/channel.ts";
import { platform } from "../../../platform/index.ts";
import { nativeCiphers } from "../../../platform/native-aead.ts";
import { rankLinkSuites } from "../../../platform/suite-ranking.ts";
import { openSerial } from "../../../transport/serial.ts";
import { tcpConnect } from "../../../transport/tcp.ts";
import type { ByteSink, ByteSource } from "../../../transport/transport.ts";
import { type AgentProcess, DEVICE, runCli } from "./harness.ts";

const resolver = makeResolver(nativeCiphers());
let lastTs = 0n;
/** Strictly increasing µs timestamps for IK message 1. */
export function nextTimestamp(): bigint {
  const t = BigInt(Date.now()) * 1000n;
  lastTs = t > lastTs ? t : lastTs + 1n;
  return lastTs;
}

/**
 * The pairing id each host key got at its last pairing through connectHost, as the host daemon
 * keeps it in its registry: a reconnect sends it unless the test gives its own.
 */
const pairingIds = new Map<string, Uint8Array>();
export function pairingIdFor(hostKey: StaticKeyPair): Uint8Array | undefined {
  return pairingIds.get(Buffer.from(hostKey.publicKey).toString("hex"));
}

export interface HostOptions {
  mode: HandshakeMode;
  hostKey: StaticKeyPair;
  token?: Uint8Array;
  deviceKey?: StaticPublicKey;
  timestamp?: () => bigint;
  /** reconnect: default pairingIdFor(hostKey). */
  pairingId?: Uint8Array;
  onOpen?: (channel: Channel, meta: Uint8Array) => void;
}

/** Connects to a TCP port, or over a tty (a path) with a fresh handshake attempt id. */
export async function connectHost(to: number | string, o: HostOptions): Promise<Connected> {
  const stream =
    typeof to === "number" ? await tcpConnect("127.0.0.1", to) : await openSerial(to, { platform });
  const attempt = new DataView(platform.randomBytes(8).buffer).getBigUint64(0);
  const c = await connectAsInitiator(
    {
      link: typeof to === "number" ? new TcpRecordLink(stream) : new SerialRecordLink(stream, attempt),
      resolver,
      staticKey: o.hostKey,
      version: "test-host-1",
      suites: rankLinkSuites(resolver),
      mode: o.mode,
      responderKey: o.deviceKey,
      token: o.token,
      pairingId: o.pairingId ?? pairingIdFor(o.hostKey),
      timestamp: o.timestamp ?? nextTimestamp,
    },
    { clock: systemClock, onOpen: o.onOpen ?? ((ch) => ch.close()) },
  );
  if (o.mode !== "reconnect") {
    pairingIds.set(Buffer.from(o.hostKey.publicKey).toString("hex"), c.established.pairingId);
  }
  return c;
}

/** Creates a token with the real `pair-token` command and pairs a fresh host key with it. */
export async function pairHost(agent: AgentProcess, onOpen?: HostOptions["onOpen"]) {
  const r = await runCli(["pair-token", "--config", agent.configPath]);
  if (r.code !== 0) throw new Error(`pair-token failed: ${r.stderr}`);
  const token = Uint8Array.from(Buffer.from(r.stdout.trim(), "hex"));
  const hostKey = generateStaticKeyPair();
  const c = await connectHost(agent.via, { mode: "pair-psk", hostKey, token, onOpen });
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
    encodeCallRequest({
      source: request.source ?? "work",
      target: request.target ?? DEVICE,
      service: request.service,
      arg: request.arg ?? "",
    }),
  );
  const out = collector();
  const err = collector();
  const input = typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
  const { status } = await runCall(channel, { stdin: input ? once(input) : null, stdout: out, stderr: err });
  return { status, stdout: out.bytes(), stderr: new TextDecoder().decode(err.bytes()) };
}

export function once(data: Uint8Array): Pick<ByteSource, "read"> {
  let sent = false;
  return {
    read: async () => {
      if (sent) return null;
      sent = true;
      return data;
    },
  };
}

export function collector(): Pick<ByteSink, "write"> & { bytes(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    write: async (d) => void parts.push(d.slice()),
    bytes: () => Buffer.concat(parts),
  };
}

export const text = (b: Uint8Array) => new TextDecoder().decode(b);
