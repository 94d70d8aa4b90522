/**
 * Framing of the daemons' unix sockets: the host daemon's (docs/host.md "Socket protocol") and,
 * for its one request, the agent's call socket (agent/link/outgoing-calls.ts):
 *
 *   client -> daemon   u16 BE length | strict CBOR map {op, ...}        (a request, or a follow-up)
 *   daemon -> client   u32 BE length | strict CBOR map {ok, ...}|{event}  (answers; a list can be long)
 *   op "call"          after the request the socket carries raw stdin in and the call output
 *                      (core/qrexec/call-protocol.ts framing) out, with no answer message.
 *
 * The reader keeps whatever arrived after a message, so the raw phase of a call loses no byte.
 * Must never: allocate for a length before checking it, or accept a non-map or non-strict CBOR.
 */
import { ByteQueue } from "../core/byte-queue.ts";
import { ProtocolError } from "../core/errors.ts";
import { type CborMap, type CborValue, decodeCbor, encodeCbor } from "../core/wire/cbor.ts";
import type { ByteSource } from "../transport/transport.ts";

export const REQUEST_MAX_BYTES = 0xffff;
export const ANSWER_MAX_BYTES = 16 * 1024 * 1024;
const ANSWER_MAX_ITEMS = 65536;

export type Direction = "request" | "answer";

const prefixOf = (d: Direction) => (d === "request" ? 2 : 4);
const maxOf = (d: Direction) => (d === "request" ? REQUEST_MAX_BYTES : ANSWER_MAX_BYTES);

export function encodeMessage(direction: Direction, message: CborMap): Uint8Array {
  const body = encodeCbor(message, { maxBytes: maxOf(direction), maxItems: ANSWER_MAX_ITEMS });
  const n = prefixOf(direction);
  const out = new Uint8Array(n + body.length);
  const view = new DataView(out.buffer);
  if (n === 2) view.setUint16(0, body.length, false);
  else view.setUint32(0, body.length, false);
  out.set(body, n);
  return out;
}

export class MessageReader {
  private readonly held = new ByteQueue();

  constructor(
    private readonly source: Pick<ByteSource, "read">,
    private readonly direction: Direction,
  ) {}

  /** The next message, or null at EOF between messages. EOF inside one is a ProtocolError. */
  async next(): Promise<CborMap | null> {
    const n = prefixOf(this.direction);
    for (;;) {
      if (this.held.length >= n) {
        const head = this.held.peek();
        const view = new DataView(head.buffer, head.byteOffset, n);
        const length = n === 2 ? view.getUint16(0, false) : view.getUint32(0, false);
        if (length === 0) throw new ProtocolError("frame-malformed", "empty socket message");
        if (length > maxOf(this.direction)) throw new ProtocolError("frame-too-large", "socket message");
        if (this.held.length >= n + length) {
          const body = this.held.take(n + length).subarray(n);
          return asMap(decodeCbor(body, { maxBytes: maxOf(this.direction), maxItems: ANSWER_MAX_ITEMS }));
        }
      }
      const chunk = await this.source.read();
      if (chunk === null) {
        if (this.held.length === 0) return null;
        throw new ProtocolError("frame-truncated", "socket message");
      }
      this.held.push(chunk);
    }
  }

  /** Bytes received after the last message (the start of a call's raw stdin). */
  takeRest(): Uint8Array {
    return this.held.take(this.held.length);
  }
}

function asMap(value: CborValue): CborMap {
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ProtocolError("schema", "socket message is not a map");
  }
  return value;
}

/** Field readers for request validation: each throws ProtocolError("schema") naming the field. */
export function fields(m: CborMap, required: readonly string[], optional: readonly string[] = []): void {
  for (const key of Object.keys(m)) {
    if (!required.includes(key) && !optional.includes(key))
      throw new ProtocolError("schema", `unknown field ${key.slice(0, 32)}`);
  }
  for (const key of required) if (!(key in m)) throw new ProtocolError("schema", `missing field ${key}`);
}

export function text(m: CborMap, key: string): string {
  const v = m[key];
  if (typeof v !== "string") throw new ProtocolError("schema", `${key} must be text`);
  return v;
}

export function optionalText(m: CborMap, key: string): string | undefined {
  return m[key] === undefined ? undefined : text(m, key);
}
