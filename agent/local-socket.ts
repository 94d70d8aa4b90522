/**
 * Calls from the device into Qubes (`qubes-air-agent call`, like qrexec-client-vm): a unix socket
 * (mode 0600) where a local client sends
 *
 *   u16 BE length | strict CBOR {target, service, arg} | stdin bytes ... (half-close = stdin EOF)
 *
 * and reads back exactly what the vchan channel carries (call-protocol.ts output messages). The
 * agent opens a channel on the current host session with the request (source = this device)
 * and bridges bytes both ways, one chunk at a time (credit and socket backpressure bound memory).
 * Without a session the client gets stderr "qubes-air-agent: not connected to sys-remote" and 125.
 * Must never: send a request whose names were not validated, or buffer a whole stream.
 */
import { dirname } from "node:path";
import { EXIT_PROBLEM, encodeCallRequest } from "../core/qrexec/call-protocol.ts";
import { isArgument, isCallTarget, isServiceName } from "../core/qrexec/names.ts";
import type { Channel } from "../core/vchan/channel.ts";
import { decodeCbor, encodeCbor } from "../core/wire/cbor.ts";
import { platform } from "../platform/index.ts";
import type { Listener } from "../platform/platform.ts";
import { finishCall } from "../runtime/call-exec.ts";
import type { ByteStream } from "../transport/transport.ts";
import { errorCode, type Log } from "./log.ts";
import type { SessionManager } from "./sessions.ts";

export const NOT_CONNECTED = "qubes-air-agent: not connected to sys-remote\n";

export interface LocalCall {
  readonly target: string;
  readonly service: string;
  readonly arg: string;
}

export function encodeLocalHeader(call: LocalCall): Uint8Array {
  const body = encodeCbor({ target: call.target, service: call.service, arg: call.arg });
  const out = new Uint8Array(2 + body.length);
  new DataView(out.buffer).setUint16(0, body.length, false);
  out.set(body, 2);
  return out;
}

function decodeLocalHeader(body: Uint8Array): LocalCall | null {
  let v: unknown;
  try {
    v = decodeCbor(body);
  } catch {
    return null;
  }
  if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) return null;
  const o = v as Record<string, unknown>;
  if (Object.keys(o).sort().join(",") !== "arg,service,target") return null;
  const { target, service, arg } = o;
  if (typeof target !== "string" || typeof service !== "string" || typeof arg !== "string") return null;
  if (!isCallTarget(target) || !isServiceName(service) || !isArgument(arg)) return null;
  return { target, service, arg };
}

export async function serveLocalSocket(
  path: string,
  sessions: SessionManager,
  self: string,
  log: Log,
): Promise<Listener> {
  const dir = dirname(path);
  if (!(await platform.stat(dir))) await platform.mkdirp(dir, 0o700);
  const listener = await platform.unixListen(path, (s) => void bridge(s, sessions, self, log), {
    mode: 0o600,
  });
  log("listening", { socket: path });
  return listener;
}

async function bridge(stream: ByteStream, sessions: SessionManager, self: string, log: Log): Promise<void> {
  let head: { call: LocalCall | null; rest: Uint8Array } | null;
  try {
    head = await readHeader(stream);
  } catch {
    head = null;
  }
  if (!head?.call) {
    log("call-out-refused", { code: "schema" });
    await finishCall(stream, EXIT_PROBLEM, "qubes-air-agent: invalid call request\n").catch(() => {});
    stream.close();
    return;
  }
  const { call, rest } = head;
  const current = sessions.current();
  if (!current) {
    log("call-out", { target: call.target, service: `${call.service}+${call.arg}`, status: "not-connected" });
    await finishCall(stream, EXIT_PROBLEM, NOT_CONNECTED).catch(() => {});
    stream.close();
    return;
  }
  let channel: Channel;
  try {
    channel = current.vchan.open(encodeCallRequest({ source: self, ...call }), "device call");
  } catch (error) {
    log("call-out", { target: call.target, service: `${call.service}+${call.arg}`, code: errorCode(error) });
    await finishCall(stream, EXIT_PROBLEM, NOT_CONNECTED).catch(() => {});
    stream.close();
    return;
  }
  log("call-out", { target: call.target, service: `${call.service}+${call.arg}` });
  const up = (async () => {
    if (rest.length > 0) await channel.write(rest);
    for (let c = await stream.read(); c !== null; c = await stream.read()) await channel.write(c);
    await channel.closeWrite();
  })();
  const down = (async () => {
    for (let c = await channel.read(); c !== null; c = await channel.read()) await stream.write(c);
    await stream.closeWrite();
  })();
  // A vanished client resets the channel; a broken channel closes the socket (the client then
  // sees no exit status: 125). Once the callee's answer is complete the call is over, whether or
  // not all of stdin was sent (as in qrexec).
  up.catch(() => channel.close());
  await down.catch(() => {});
  channel.close();
  stream.close();
}

/** Reads the u16-prefixed header; returns it decoded (null if invalid) and the bytes after it. */
async function readHeader(stream: ByteStream): Promise<{ call: LocalCall | null; rest: Uint8Array } | null> {
  let buf = new Uint8Array(0);
  const need = async (n: number) => {
    while (buf.length < n) {
      const c = await stream.read();
      if (c === null) return false;
      const joined = new Uint8Array(buf.length + c.length);
      joined.set(buf);
      joined.set(c, buf.length);
      buf = joined;
    }
    return true;
  };
  if (!(await need(2))) return null;
  const len = new DataView(buf.buffer, buf.byteOffset, 2).getUint16(0, false);
  if (!(await need(2 + len))) return null;
  return { call: decodeLocalHeader(buf.subarray(2, 2 + len)), rest: buf.slice(2 + len) };
}
