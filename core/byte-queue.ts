/**
 * Bytes received and not yet consumed, for the stream readers that cut frames or lines out of
 * what a peer sends (call output, ssh-agent messages, Assuan lines, the daemons' sockets).
 * Appending is amortised O(1) (the buffer doubles): joining the held bytes with each chunk, as
 * those readers did, costs O(n²) when a peer sends a frame a byte at a time (docs/threat-model.md
 * "Red-team findings", S1). Pure.
 * Must never: write into bytes it has handed out. A view from take() stays valid for ever; a
 * pushed chunk is adopted without a copy when nothing is held, and never written to either.
 */
import { assert } from "./errors.ts";

/** Smallest buffer the queue grows its own buffer to. */
const MIN_CAPACITY = 256;

export class ByteQueue {
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  private end = 0;
  /** buf is not ours to write into: it is an adopted chunk, or views of it were handed out. */
  private frozen = true;

  /** Bytes held. */
  get length(): number {
    return this.end - this.start;
  }

  /** The held bytes, to look at: a view valid until the next push(). */
  peek(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const held = this.length;
    if (held === 0) {
      // The common case, a whole frame per chunk: no copy at all.
      this.buf = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.frozen = true;
      return;
    }
    if (this.frozen || this.end + chunk.length > this.buf.length) {
      // Out of a buffer not ours (the usual case: frames were taken from it, a partial one is
      // left): exactly what is needed, as a plain join would. Out of room in our own (a frame
      // arriving in pieces): double, which keeps a byte-at-a-time frame linear.
      const needed = held + chunk.length;
      const next = new Uint8Array(this.frozen ? needed : Math.max(MIN_CAPACITY, 2 * needed));
      next.set(this.buf.subarray(this.start, this.end));
      this.buf = next;
      this.start = 0;
      this.end = held;
      this.frozen = false;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** The first `n` held bytes, consumed: a view the queue never writes to again. */
  take(n: number): Uint8Array {
    assert(Number.isInteger(n) && n >= 0 && n <= this.length, "take within what is held");
    const out = this.buf.subarray(this.start, this.start + n);
    this.start += n;
    this.frozen = true;
    return out;
  }

  /** Drops the first `n` held bytes. */
  skip(n: number): void {
    assert(Number.isInteger(n) && n >= 0 && n <= this.length, "skip within what is held");
    this.start += n;
  }
}
