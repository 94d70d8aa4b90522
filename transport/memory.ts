/**
 * An in-memory connected pair of ByteStreams with the full contract (half-close, close, bounded
 * buffering), for tests of everything above the transport. Each direction buffers at most
 * `bufferBytes` plus one write before writers wait, so backpressure is observable.
 *
 * Must never share a buffer with the caller: writes are copied, as a kernel would.
 */

import { type ByteStream, ReadQueue, TransportError } from "./transport.ts";

export interface MemoryPairOptions {
  /** Bytes one direction buffers before write() waits (default 64 KiB). */
  bufferBytes?: number;
  /** Prefix for descriptions (default "memory"). */
  name?: string;
}

/** One direction: a ReadQueue whose pause/resume gates the writer instead of a socket. */
class Direction {
  readonly queue: ReadQueue;
  private full = false;
  private space: Array<() => void> = [];
  /** Set when the reading end is gone: further writes fail like EPIPE. */
  readerGone = false;

  constructor(limit: number) {
    this.queue = new ReadQueue(
      () => {
        this.full = true;
      },
      () => this.release(),
      limit,
    );
  }

  /** Resolves once the reader has drained the buffer below its limit. */
  waitForSpace(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => this.space.push(resolve));
  }

  release(): void {
    this.full = false;
    const waiters = this.space;
    this.space = [];
    for (const w of waiters) w();
  }
}

class MemoryStream implements ByteStream {
  private writeClosed = false;
  /** close() was called here (writes then fail "closed" rather than "EPIPE"). */
  private closedHere = false;
  /** Both directions are over, by close() or by EOF both ways. */
  private isClosed = false;
  private resolveClosed!: () => void;
  readonly closed = new Promise<void>((r) => {
    this.resolveClosed = r;
  });
  peer!: MemoryStream;

  constructor(
    readonly description: string,
    private readonly incoming: Direction,
    private readonly outgoing: Direction,
  ) {}

  read(): Promise<Uint8Array | null> {
    return this.incoming.queue.read();
  }

  async write(data: Uint8Array): Promise<void> {
    this.checkWritable();
    if (data.length === 0) return;
    this.outgoing.queue.push(data.slice());
    await this.outgoing.waitForSpace();
    // close() or the peer's close() during the wait must fail this write, not pass silently.
    this.checkWritable();
  }

  private checkWritable(): void {
    if (this.closedHere) throw new TransportError(`${this.description}: write after close`, "closed");
    if (this.outgoing.readerGone) throw new TransportError(`${this.description}: peer closed`, "EPIPE");
    if (this.writeClosed)
      throw new TransportError(`${this.description}: write after closeWrite`, "write-closed");
  }

  async closeWrite(): Promise<void> {
    if (this.writeClosed || this.isClosed) return;
    this.writeClosed = true;
    this.outgoing.queue.end();
    this.outgoing.release();
    this.maybeFullyClosed();
    this.peer.maybeFullyClosed();
  }

  close(): void {
    if (this.closedHere) return;
    this.closedHere = true;
    this.isClosed = true;
    // Bytes we already sent stay readable by the peer, then it sees EOF; bytes sent to us are dropped.
    this.outgoing.queue.end();
    this.outgoing.release();
    this.incoming.readerGone = true;
    this.incoming.queue.close();
    this.incoming.release();
    this.resolveClosed();
    this.peer.maybeFullyClosed();
  }

  /** Both directions over (as a TCP socket is destroyed after FIN both ways). */
  maybeFullyClosed(): void {
    if (this.isClosed) return;
    if ((this.writeClosed || this.outgoing.readerGone) && this.incoming.queue.done) {
      this.isClosed = true;
      this.resolveClosed();
    }
  }
}

export function memoryPair(options: MemoryPairOptions = {}): [ByteStream, ByteStream] {
  const limit = options.bufferBytes ?? 64 * 1024;
  const name = options.name ?? "memory";
  const ab = new Direction(limit);
  const ba = new Direction(limit);
  const a = new MemoryStream(`${name} a`, ba, ab);
  const b = new MemoryStream(`${name} b`, ab, ba);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
