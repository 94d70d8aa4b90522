/**
 * TCP framing (Noise spec rev 34 §13; DESIGN.md "The link, layer by layer" 2):
 *
 *   u16 BE length | one Noise message of that length (1..65535 bytes)
 *
 * TCP neither drops nor corrupts bytes, so there is no CRC and no resync: a bad length is a peer
 * fault that ends the session. A zero length is malformed (no Noise message is empty).
 *
 * Must never: copy a byte more than once (this is the hot path at hundreds of MB/s), concatenate
 * the buffered stream on push, accept a length over the limit, or put peer bytes into an error.
 */
import { assert, ProtocolError } from "../errors.ts";
import { NOISE_MAX_MESSAGE, TCP_LENGTH_PREFIX_BYTES } from "./limits.ts";

const ALIGN_PAD = 64 - TCP_LENGTH_PREFIX_BYTES;

/**
 * Frames msg using the two bytes before it in its own buffer (msg.byteOffset >= 2, and those
 * bytes belong to msg's owner: see CipherFunctions.encrypt), else copies like encodeTcpFrame.
 */
export function frameInPlace(msg: Uint8Array): Uint8Array {
  if (msg.byteOffset < TCP_LENGTH_PREFIX_BYTES) return encodeTcpFrame(msg);
  assert(msg.length >= 1 && msg.length <= NOISE_MAX_MESSAGE, "Noise message size out of range");
  const out = new Uint8Array(
    msg.buffer,
    msg.byteOffset - TCP_LENGTH_PREFIX_BYTES,
    msg.length + TCP_LENGTH_PREFIX_BYTES,
  );
  out[0] = msg.length >>> 8;
  out[1] = msg.length & 0xff;
  return out;
}

/** Prefixes msg with its length. An empty or oversized message is our own bug and asserts. */
export function encodeTcpFrame(msg: Uint8Array): Uint8Array {
  assert(msg.length >= 1 && msg.length <= NOISE_MAX_MESSAGE, "Noise message size out of range");
  // The message lands 64-byte aligned: on some x86 CPUs a large copy whose destination sits a
  // few bytes past the source's alignment runs ~15x slower (measured: bench/README.md).
  const out = new Uint8Array(ALIGN_PAD + TCP_LENGTH_PREFIX_BYTES + msg.length).subarray(ALIGN_PAD);
  out[0] = msg.length >>> 8;
  out[1] = msg.length & 0xff;
  out.set(msg, TCP_LENGTH_PREFIX_BYTES);
  return out;
}

/**
 * Streaming decoder: push() chunks as they arrive, then next()/drain() until no frame is left.
 *
 * Pushed chunks are kept as a list, not concatenated. A frame that lies within one chunk is
 * returned as a subarray view of that chunk (zero copy), so push() takes ownership: the caller
 * must not reuse or modify a chunk after pushing it. A frame split across chunks is copied once
 * into a fresh buffer. After the first ProtocolError the reader stays failed.
 */
export class TcpFrameReader {
  private chunks: Uint8Array[] = [];
  private first = 0; // index of the oldest live chunk
  private offset = 0; // read position inside chunks[first]
  private buffered = 0;
  private failed: ProtocolError | null = null;
  private readonly maxMessage: number;

  /** maxMessage lowers the limit (e.g. for handshake messages); it can never exceed 65535. */
  constructor(opts: { maxMessage?: number } = {}) {
    const max = opts.maxMessage ?? NOISE_MAX_MESSAGE;
    assert(Number.isInteger(max) && max >= 1 && max <= NOISE_MAX_MESSAGE, "maxMessage out of range");
    this.maxMessage = max;
  }

  /** Bytes received but not yet returned as frames. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete Noise message, or undefined when more bytes are needed. Throws
   * ProtocolError "frame-malformed" (length 0) or "frame-too-large" (over maxMessage), checked
   * as soon as the two length bytes are in, before the body is awaited.
   */
  next(): Uint8Array | undefined {
    if (this.failed) throw this.failed;
    if (this.buffered < TCP_LENGTH_PREFIX_BYTES) return undefined;
    const len = (this.peekByte(0) << 8) | this.peekByte(1);
    if (len === 0) throw this.fail(new ProtocolError("frame-malformed", "zero-length TCP frame"));
    if (len > this.maxMessage)
      throw this.fail(new ProtocolError("frame-too-large", "TCP frame over the limit"));
    if (this.buffered < TCP_LENGTH_PREFIX_BYTES + len) return undefined;
    this.skip(TCP_LENGTH_PREFIX_BYTES);
    return this.take(len);
  }

  *drain(): Generator<Uint8Array, void, undefined> {
    for (let m = this.next(); m !== undefined; m = this.next()) yield m;
  }

  /** Call at end of stream: a partial frame left over means the peer stopped mid-frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered > 0) throw this.fail(new ProtocolError("frame-truncated", "stream ended mid-frame"));
  }

  private fail(e: ProtocolError): ProtocolError {
    this.failed = e;
    this.chunks = [];
    this.first = 0;
    this.offset = 0;
    this.buffered = 0;
    return e;
  }

  private peekByte(k: number): number {
    let idx = this.first;
    let at = this.offset + k;
    for (let c = this.chunks[idx]!; at >= c.length; c = this.chunks[idx]!) {
      at -= c.length;
      idx++;
    }
    return this.chunks[idx]![at]!;
  }

  /** Consumes n bytes (n <= buffered). */
  private skip(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[this.first]!;
      const left = c.length - this.offset;
      if (n < left) {
        this.offset += n;
        return;
      }
      n -= left;
      this.advanceChunk();
    }
  }

  /** Consumes n bytes (n <= buffered): a view when they lie in one chunk, else one copy. */
  private take(n: number): Uint8Array {
    this.buffered -= n;
    const c = this.chunks[this.first]!;
    const left = c.length - this.offset;
    if (n <= left) {
      const view = c.subarray(this.offset, this.offset + n);
      if (n === left) this.advanceChunk();
      else this.offset += n;
      return view;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const cur = this.chunks[this.first]!;
      const part = Math.min(cur.length - this.offset, n - o);
      out.set(cur.subarray(this.offset, this.offset + part), o);
      o += part;
      if (this.offset + part === cur.length) this.advanceChunk();
      else this.offset += part;
    }
    return out;
  }

  private advanceChunk(): void {
    this.offset = 0;
    this.first++;
    if (this.first === this.chunks.length) {
      this.chunks = [];
      this.first = 0;
    } else if (this.first >= 1024) {
      // Many tiny pushes: drop consumed slots now and then, not on every frame.
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
  }
}
