/**
 * Serial framing (DESIGN.md "The link, layer by layer" 2; noise-transport.md §4, §7.7):
 *
 *   COBS( type u8 | epoch u8 | counter u64 BE | body | CRC-32C u32 BE of all before ) 0x00
 *
 * A serial line can drop, flip or insert bytes, so every frame stands alone: a corrupted frame is
 * dropped and the reader resynchronises at the next 0x00. The CRC only separates line noise from
 * data; it authenticates nothing (the Noise AEAD does, and the counter is the AEAD nonce).
 *
 * Must never: deliver a frame that failed COBS, size or CRC checks; hold more than one maximal
 * encoded frame of unterminated input; put peer bytes into an error.
 */
import { assert, ProtocolError } from "../errors.ts";
import { cobsDecodeStatus, cobsEncodeInto, cobsMaxEncodedLength, cobsStatusError } from "./cobs.ts";
import { crc32c } from "./crc32c.ts";
import { SERIAL_CRC_BYTES, SERIAL_HEADER_BYTES, SERIAL_MAX_BODY, SERIAL_MAX_FRAME } from "./limits.ts";

/** Frame types. Unknown types are rejected at decode ("frame-malformed"). */
export const SerialFrameType = {
  /**
   * One Noise handshake message (pairing, reconnect or rekey). epoch and counter are set by the
   * session layer; they are CRC-checked but not authenticated.
   */
  HANDSHAKE: 1,
  /**
   * One Noise transport message encrypted under key epoch `epoch` with nonce `counter`. The
   * receiver checks counter against that epoch's ReplayWindow, and commits it only after the
   * AEAD decryption succeeded.
   */
  TRANSPORT: 2,
  /**
   * "This session is over" (issue 9): sent in clear by a side that ended its session on a line
   * fault (a lost or forged frame, a dead-peer timeout), so the other side reconnects at once
   * instead of waiting for its keepalive. counter is the session's handshake attempt id, epoch 0,
   * body one 0x00 byte. Unauthenticated: it may only end the session it names, which a line
   * attacker can do anyway by corrupting one frame; a receiver never does anything else with it.
   * Body 0x01, counter 0 ("no session here"): sent by a responder that has no session and reads
   * transport frames (it restarted: the initiator's session is gone with it, but it cannot name
   * it); the initiator ends its session in transport phase. Everything the responder sends
   * after it (its handshake answers) comes later on the line, so it never ends a newer session.
   */
  RESET: 3,
} as const;
export type SerialFrameType = (typeof SerialFrameType)[keyof typeof SerialFrameType];

export interface SerialFrame {
  type: SerialFrameType;
  /** Key epoch, 0..255. */
  epoch: number;
  /** Explicit 64-bit counter, 0..2^64-1. */
  counter: bigint;
  /** One Noise message, 1..SERIAL_MAX_BODY bytes. Decoded frames own their body (a copy). */
  body: Uint8Array;
}

/** Largest COBS encoding of a legal frame, delimiters not included; the reader's buffer cap. */
export const SERIAL_MAX_ENCODED = cobsMaxEncodedLength(SERIAL_MAX_FRAME);

const MIN_FRAME = SERIAL_HEADER_BYTES + 1 + SERIAL_CRC_BYTES;
/** COBS adds at least one byte, so a shorter segment cannot hold a frame. */
const MIN_ENCODED = MIN_FRAME + 1;
const U64_MAX = 2n ** 64n - 1n;

// Decode and encode stage through one scratch buffer: synchronous, so never shared mid-use, and a
// flood of bad frames costs no allocation.
const scratch = new Uint8Array(SERIAL_MAX_FRAME);

export interface EncodeSerialOptions {
  /**
   * Also emit a 0x00 before the frame (default false). One byte that flushes whatever garbage the
   * receiver has accumulated, so the frame cannot be glued to it; cheap, and worth it at least on
   * the first frame of every burst.
   */
  leadingDelimiter?: boolean;
}

/** Encodes one frame, delimiter(s) included. Invalid fields are our own bug and assert. */
export function encodeSerialFrame(frame: SerialFrame, opts: EncodeSerialOptions = {}): Uint8Array {
  const { type, epoch, counter, body } = frame;
  assert(
    type === SerialFrameType.HANDSHAKE ||
      type === SerialFrameType.TRANSPORT ||
      type === SerialFrameType.RESET,
    "unknown frame type",
  );
  assert(Number.isInteger(epoch) && epoch >= 0 && epoch <= 0xff, "epoch must be a u8");
  assert(typeof counter === "bigint" && counter >= 0n && counter <= U64_MAX, "counter must be a u64");
  assert(body.length >= 1 && body.length <= SERIAL_MAX_BODY, "serial body size out of range");
  const len = SERIAL_HEADER_BYTES + body.length + SERIAL_CRC_BYTES;
  const raw = scratch.subarray(0, len);
  raw[0] = type;
  raw[1] = epoch;
  writeU32(raw, 2, Number(counter >> 32n));
  writeU32(raw, 6, Number(counter & 0xffffffffn));
  raw.set(body, SERIAL_HEADER_BYTES);
  writeU32(raw, len - SERIAL_CRC_BYTES, crc32c(raw.subarray(0, len - SERIAL_CRC_BYTES)));
  const lead = opts.leadingDelimiter ? 1 : 0;
  const out = new Uint8Array(lead + cobsMaxEncodedLength(len) + 1);
  const end = lead + cobsEncodeInto(raw, out, lead);
  out[end] = 0; // trailing delimiter (and out[0] is already 0x00 when lead)
  return out.subarray(0, end + 1);
}

/**
 * Decodes one encoded frame: the bytes between two delimiters; one leading and one trailing
 * 0x00 are tolerated, so encodeSerialFrame's output round-trips. Throws ProtocolError:
 * "frame-too-large" (over SERIAL_MAX_FRAME), "frame-truncated" (too short, or a COBS block runs
 * past the end), "frame-crc", "frame-malformed" (zero inside, unknown type, empty body).
 */
export function decodeSerialFrame(bytes: Uint8Array): SerialFrame {
  let start = 0;
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0) end--;
  if (end > 0 && bytes[0] === 0) start++;
  const r = decodeEncoded(bytes.subarray(start, end));
  if (typeof r === "string") throw new ProtocolError(r);
  if (typeof r === "number") throw cobsStatusError(r);
  return r;
}

type DropCode = "frame-too-large" | "frame-truncated" | "frame-crc" | "frame-malformed";

/** Non-throwing core of decodeSerialFrame: a frame, a DropCode, or a negative COBS status. */
function decodeEncoded(enc: Uint8Array): SerialFrame | DropCode | number {
  if (enc.length > SERIAL_MAX_ENCODED) return "frame-too-large";
  const len = cobsDecodeStatus(enc, scratch, SERIAL_MAX_FRAME);
  if (len < 0) return len;
  if (len < SERIAL_HEADER_BYTES + SERIAL_CRC_BYTES) return "frame-truncated";
  const crcAt = len - SERIAL_CRC_BYTES;
  if (crc32c(scratch.subarray(0, crcAt)) !== readU32(scratch, crcAt)) return "frame-crc";
  const type = scratch[0]!;
  if (
    type !== SerialFrameType.HANDSHAKE &&
    type !== SerialFrameType.TRANSPORT &&
    type !== SerialFrameType.RESET
  )
    return "frame-malformed";
  if (len < MIN_FRAME) return "frame-malformed"; // empty body: every Noise message has bytes
  return {
    type,
    epoch: scratch[1]!,
    counter: (BigInt(readU32(scratch, 2)) << 32n) | BigInt(readU32(scratch, 6)),
    body: scratch.slice(SERIAL_HEADER_BYTES, crcAt),
  };
}

/**
 * Streaming decoder: push() raw line bytes as they arrive, then take frames with next() or
 * drain(). Bytes accumulate until a 0x00; a segment that fails COBS, size or CRC is dropped and
 * counted, never delivered and never thrown. Unterminated input is capped at SERIAL_MAX_ENCODED:
 * past it the reader discards everything up to the next 0x00, so a flood of non-zero garbage
 * uses bounded memory. Decoded frames queue until taken; drain after every push.
 */
export class SerialFrameReader {
  /** Frames delivered. */
  framesOk = 0;
  /** Segments dropped: bad COBS, size or CRC, unknown type, or an overflowing run. */
  framesDropped = 0;
  /** Bytes thrown away with dropped segments (delimiters not counted). */
  bytesDiscarded = 0;

  private readonly acc = new Uint8Array(SERIAL_MAX_ENCODED);
  private accLen = 0;
  private discarding = false;
  private queue: SerialFrame[] = [];
  private head = 0;

  /** Bytes of an unterminated segment held right now (never more than SERIAL_MAX_ENCODED). */
  get pendingBytes(): number {
    return this.accLen;
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      const z = chunk.indexOf(0, i);
      const end = z === -1 ? n : z;
      const len = end - i;
      if (this.discarding) {
        this.bytesDiscarded += len;
      } else if (this.accLen === 0 && z !== -1) {
        // The whole segment lies in this chunk: decode it in place, no copy into acc.
        if (len > 0) this.take(chunk, i, end);
      } else if (this.accLen + len > SERIAL_MAX_ENCODED) {
        this.bytesDiscarded += this.accLen + len;
        this.framesDropped++;
        this.accLen = 0;
        this.discarding = true;
      } else {
        this.acc.set(chunk.subarray(i, end), this.accLen);
        this.accLen += len;
        if (z !== -1) {
          this.take(this.acc, 0, this.accLen);
          this.accLen = 0;
        }
      }
      if (z === -1) return;
      this.discarding = false; // the delimiter ends any discarded run
      i = z + 1;
    }
  }

  /** The next decoded frame, or undefined when none is complete. */
  next(): SerialFrame | undefined {
    if (this.head === this.queue.length) return undefined;
    const f = this.queue[this.head++]!;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    return f;
  }

  *drain(): Generator<SerialFrame, void, undefined> {
    for (let f = this.next(); f !== undefined; f = this.next()) yield f;
  }

  /** Decodes the segment src[start, end) and queues or drops it. */
  private take(src: Uint8Array, start: number, end: number): void {
    // Short segments are the cheapest flood (a byte and a 0x00 each): refuse them without work.
    const r = end - start < MIN_ENCODED ? "frame-truncated" : decodeEncoded(src.subarray(start, end));
    if (typeof r === "object") {
      this.queue.push(r);
      this.framesOk++;
    } else {
      this.framesDropped++;
      this.bytesDiscarded += end - start;
    }
  }
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
