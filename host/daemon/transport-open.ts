/**
 * Opens the byte stream to a remote and wraps it in the matching RecordLink: TCP framing for
 * `tcp`, COBS serial framing with a fresh random attempt id for `serial` (so frames left in a
 * tty buffer by an earlier attempt are ignored). A serial remote named by its by-id entry is
 * always opened as /dev/serial/by-id/<name>, never through a ttyACM index, which changes with
 * plug order. A serial open first writes one 0x00 (a frame delimiter), which returns once the
 * line takes bytes again after a stall, so the handshake deadline never runs out on a line that
 * is still stuck.
 * Must never: leave a stream open when it returns an error.
 */
import { join } from "node:path";
import { ConfigError, ProtocolError } from "../../core/errors.ts";
import type { RecordLink } from "../../core/session/record-link.ts";
import { SerialRecordLink } from "../../core/session/serial-record-link.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { platform, SpawnError } from "../../platform/index.ts";
import { openSerial } from "../../transport/serial.ts";
import { tcpConnect } from "../../transport/tcp.ts";
import { type ByteStream, TransportError } from "../../transport/transport.ts";
import { findByIdEntry } from "./hotplug.ts";
import { parseTcpAddress, type RemoteEntry, type TransportSpec } from "./registry.ts";

export const DEFAULT_BY_ID_DIR = "/dev/serial/by-id";
const LINE_PRIMER = Uint8Array.of(0);

export interface OpenOptions {
  readonly connectTimeoutMs?: number;
}

export interface OpenedLink {
  readonly stream: ByteStream;
  readonly link: RecordLink;
}

/**
 * The tty to open for a serial remote now, or null when its device is not present: its by-id
 * entry (exact name, or one holding its USB serial), or its configured path.
 */
export async function locateSerial(
  entry: Pick<RemoteEntry, "transport" | "usbSerial">,
  byIdDir: string,
): Promise<string | null> {
  const t = entry.transport;
  if ("tcp" in t) return null;
  if ("path" in t.serial && (await platform.stat(t.serial.path)) !== null) return t.serial.path;
  const byId = "byId" in t.serial ? t.serial.byId : null;
  const name = await findByIdEntry(byIdDir, byId, entry.usbSerial);
  return name === null ? null : join(byIdDir, name);
}

/** Opens a TCP remote, or the serial tty `serialPath` (from locateSerial). */
export async function openTransport(
  t: TransportSpec,
  serialPath: string | null,
  o: OpenOptions = {},
): Promise<OpenedLink> {
  if ("tcp" in t) {
    const addr = parseTcpAddress(t.tcp);
    if (!addr) throw new ConfigError(`bad tcp address ${t.tcp}`);
    const stream = await tcpConnect(addr.host, addr.port, { timeoutMs: o.connectTimeoutMs ?? 5000 });
    return { stream, link: new TcpRecordLink(stream) };
  }
  if (serialPath === null) throw new ConfigError("the serial device is not present");
  const stream = await openSerial(serialPath, { platform });
  try {
    // A lone frame delimiter (ignored by the device's reader) waits for any write of the last
    // session still stuck in this line, or fails at the write deadline: so the handshake's
    // deadline counts only time on a line that takes bytes again (issue 9: back within 2 s).
    await stream.write(LINE_PRIMER);
  } catch (e) {
    stream.close();
    throw e;
  }
  return { stream, link: new SerialRecordLink(stream, randomAttemptId()) };
}

export function randomAttemptId(): bigint {
  const b = platform.randomBytes(8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, false);
}

/** A short fixed code for a failure, for `list` and logs ("ECONNREFUSED", "handshake-decrypt"). */
export function failureCode(e: unknown): string {
  if (e instanceof ProtocolError) return e.code;
  if (e instanceof TransportError) return e.code;
  if (e instanceof SpawnError) return e.code;
  if (e instanceof ConfigError) return "config";
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[A-Za-z0-9_-]{1,32}$/.test(code) ? code : "error";
}
