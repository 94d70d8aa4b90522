/**
 * The one byte-stream interface every link runs on (TCP, serial tty, unix socket, process pipe,
 * in-memory pair), its written contract, and the read queue the adapters share.
 *
 * A ByteStream moves opaque bytes only: framing lives in core/wire. This module must never
 * interpret, log or copy peer bytes into messages, and must never import a runtime (Bun/Node).
 */

import { assert } from "../core/errors.ts";

/**
 * A duplex, ordered, reliable byte stream. Contract (every implementation passes the shared
 * suite in test/helpers/stream-contract.ts):
 *
 * - Pull-based reading: nothing is read from the source faster than the caller asks, beyond a
 *   bounded read-ahead buffer, so a slow reader pushes back on the peer instead of growing memory.
 * - Writes are awaited: a resolved write means the bytes have left our hands (kernel or peer
 *   queue) and the caller may reuse its buffer. Memory is bounded by what callers have in flight.
 * - Errors are TransportError, never a raw runtime error; messages never contain peer bytes.
 * - close() is always safe, idempotent, and must eventually be called by the owner, even after
 *   EOF in both directions: it is what releases the fd.
 */
export interface ByteStream extends ByteSource, ByteSink {}

/** The read half of the contract (a child's stdout, a tty reader). */
export interface ByteSource {
  /**
   * Next chunk (never empty), or null at EOF: the peer half-closed, the line went away (a pty
   * whose other side closed reads EIO, reported as EOF), or close() was called. At most one read
   * may be pending (a second concurrent read is a bug and asserts). Rejects with TransportError
   * on an I/O failure, after any bytes received before it were delivered. The chunk belongs to
   * the caller: the stream never reuses or mutates it.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Closes both directions now, dropping unread and unwritten bytes. Idempotent. A pending read
   * resolves null and pending writes reject with TransportError.
   */
  close(): void;
  /** Resolves (never rejects) once the stream is fully closed and its fd/handle released. */
  readonly closed: Promise<void>;
  /** Human description for logs, e.g. "tcp 127.0.0.1:4001" or "serial /dev/ttyACM0". */
  readonly description: string;
}

/** The write half of the contract (a child's stdin). */
export interface ByteSink {
  /**
   * Queues all of `data` and resolves once the stream can take more; callers must await it
   * (that is the backpressure). The caller must not mutate `data` until it resolves; after that
   * the stream no longer refers to it. A zero-length write is a no-op (it does not mean EOF here;
   * use closeWrite). Rejects with TransportError after closeWrite()/close() or on an I/O failure;
   * writes pending at close() reject too.
   */
  write(data: Uint8Array): Promise<void>;
  /**
   * Half-close: the peer reads EOF after everything written so far; reading continues. Resolves
   * when the written bytes are flushed. Idempotent. Streams without a half-close on the wire
   * (serial) document what they do instead.
   */
  closeWrite(): Promise<void>;
  /** As ByteSource.close. */
  close(): void;
  readonly closed: Promise<void>;
  readonly description: string;
}

/**
 * An I/O failure of a stream (reset, broken pipe, device gone, write after close). `code` is the
 * errno name when there is one ("ECONNRESET"), else one of our own ("closed", "write-closed").
 */
export class TransportError extends Error {
  override readonly name = "TransportError";
  constructor(
    message: string,
    readonly code = "io",
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Wraps a runtime error (ErrnoException) as a TransportError naming `what` failed. */
export function toTransportError(what: string, e: unknown): TransportError {
  if (e instanceof TransportError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const c = typeof code === "string" ? code : "io";
  const msg = e instanceof Error ? e.message : String(e);
  return new TransportError(`${what}: ${msg}`, c, { cause: e });
}

/** Default read-ahead per stream: enough to keep a 64 KiB-chunk pipeline full. */
export const READ_AHEAD_BYTES = 1024 * 1024;

type Waiter = { resolve: (c: Uint8Array | null) => void; reject: (e: TransportError) => void };

/**
 * The read side shared by adapters: a push source (socket 'data' events, fs reads) feeds it, the
 * one reader pulls. Above `highWater` queued bytes it calls pause(), and resume() once the reader
 * has drained below half of it, so read-ahead is bounded.
 */
export class ReadQueue {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private queued = 0;
  private eof = false;
  private error: TransportError | null = null;
  private paused = false;
  private waiter: Waiter | null = null;

  constructor(
    private readonly pause: () => void = () => {},
    private readonly resume: () => void = () => {},
    private readonly highWater = READ_AHEAD_BYTES,
  ) {}

  /** True once EOF, an error or close() ended the read side. */
  get done(): boolean {
    return this.eof || this.error !== null;
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.queued;
  }

  push(chunk: Uint8Array): void {
    if (this.done || chunk.length === 0) return;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w.resolve(chunk);
      return;
    }
    this.chunks.push(chunk);
    this.queued += chunk.length;
    if (!this.paused && this.queued >= this.highWater) {
      this.paused = true;
      this.pause();
    }
  }

  /** The source reached EOF: queued chunks are still delivered, then null. */
  end(): void {
    if (this.done) return;
    this.eof = true;
    this.settleWaiter();
  }

  /** The source failed: queued chunks are still delivered, then the error. */
  fail(e: TransportError): void {
    if (this.done) return;
    this.error = e;
    this.settleWaiter();
  }

  /** close(): drop what is queued and make the pending and later reads return null. */
  close(): void {
    this.chunks = [];
    this.head = 0;
    this.queued = 0;
    this.error = null;
    this.eof = true;
    this.settleWaiter();
  }

  read(): Promise<Uint8Array | null> {
    assert(this.waiter === null, "ByteStream.read: only one read may be pending");
    if (this.head < this.chunks.length) return Promise.resolve(this.take());
    if (this.error) return Promise.reject(this.error);
    if (this.eof) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private take(): Uint8Array {
    const c = this.chunks[this.head]!;
    this.chunks[this.head++] = EMPTY;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 1024) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    this.queued -= c.length;
    if (this.paused && this.queued <= this.highWater >> 1) {
      this.paused = false;
      this.resume();
    }
    return c;
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (!w || this.head < this.chunks.length) return;
    this.waiter = null;
    if (this.error) w.reject(this.error);
    else w.resolve(null);
  }
}

const EMPTY = new Uint8Array(0);
