/**
 * One vchan channel: an ordered byte stream in each direction with its own EOF, credit-based
 * flow control, and reset. It has the shape of transport/'s ByteStream (read/write/closeWrite/
 * close), so the layers above treat a channel like any other stream.
 *
 * Flow control: we may send at most `sendCredit` bytes the peer has not yet acknowledged as
 * consumed; the peer grants more with CREDIT once its reader has taken the bytes. A slow reader
 * thus stops the writer instead of growing buffers (DESIGN.md "The link", step 4).
 * Must never: send beyond the credit granted, or deliver data after a reset.
 */
import { assert, ProtocolError } from "../errors.ts";
import { VCHAN_WINDOW_BYTES } from "../wire/limits.ts";
import { ResetReason, VchanType } from "./messages.ts";

/** What a channel needs from its multiplexer. */
export interface ChannelHost {
  readonly maxChunk: number;
  /** One DATA record whose body is `prefix` (if any) followed by `data`. */
  sendData(id: number, data: Uint8Array, prefix?: Uint8Array): Promise<void>;
  sendControl(id: number, type: number, value?: number): Promise<void>;
  release(id: number): void;
}

export class ChannelResetError extends Error {
  override readonly name = "ChannelResetError";
  constructor(readonly reason: ResetReason) {
    super(`channel reset (${reason})`);
  }
}

type Waiter = { resolve: () => void; reject: (e: Error) => void };

export class Channel {
  private readonly queue: Uint8Array[] = [];
  private received = 0; // bytes received under the current grant
  private consumedSinceGrant = 0;
  private readWaiter: { resolve: (v: Uint8Array | null) => void; reject: (e: Error) => void } | null = null;
  private creditWaiters: Waiter[] = [];
  private sendCredit = VCHAN_WINDOW_BYTES;
  private recvEof = false;
  private sendEof = false;
  private failure: Error | null = null;
  private resolveClosed!: () => void;
  readonly closed: Promise<void>;

  constructor(
    readonly id: number,
    readonly description: string,
    private readonly host: ChannelHost,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  // --- ByteStream side ---

  read(): Promise<Uint8Array | null> {
    assert(this.readWaiter === null, "concurrent read on a channel");
    const chunk = this.queue.shift();
    if (chunk) return Promise.resolve(this.consumed(chunk));
    if (this.failure) return Promise.reject(this.failure);
    if (this.recvEof) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.readWaiter = { resolve, reject };
    });
  }

  async write(data: Uint8Array): Promise<void> {
    for (let offset = 0; offset < data.length; ) {
      if (this.failure) throw this.failure;
      if (this.sendEof) throw new ProtocolError("channel-state", "write after EOF");
      if (this.sendCredit === 0) {
        await new Promise<void>((resolve, reject) => this.creditWaiters.push({ resolve, reject }));
        continue;
      }
      const n = Math.min(data.length - offset, this.sendCredit, this.host.maxChunk);
      this.sendCredit -= n;
      await this.host.sendData(this.id, data.subarray(offset, offset + n));
      offset += n;
    }
  }

  /**
   * write(prefix + data) without joining them first: one DATA record built from both when the
   * credit and the chunk size allow (the usual case for a call's output message: one copy of the
   * bytes fewer per record), else the joined bytes through write().
   */
  async writeJoined(prefix: Uint8Array, data: Uint8Array): Promise<void> {
    const n = prefix.length + data.length;
    if (this.failure) throw this.failure;
    if (this.sendEof) throw new ProtocolError("channel-state", "write after EOF");
    if (n > 0 && n <= this.sendCredit && n <= this.host.maxChunk) {
      this.sendCredit -= n;
      return this.host.sendData(this.id, data, prefix);
    }
    const joined = new Uint8Array(n);
    joined.set(prefix, 0);
    joined.set(data, prefix.length);
    return this.write(joined);
  }

  async closeWrite(): Promise<void> {
    if (this.sendEof || this.failure) return;
    this.sendEof = true;
    await this.host.sendControl(this.id, VchanType.EOF);
    this.maybeFinished();
  }

  /** Ends both directions now: a reset if anything is still open. */
  close(): void {
    this.reset(ResetReason.CANCELLED);
  }

  reset(reason: ResetReason): void {
    if (this.failure || (this.sendEof && this.recvEof)) return;
    this.host.sendControl(this.id, VchanType.RESET, reason).catch(() => {});
    this.fail(new ChannelResetError(reason));
  }

  // --- multiplexer side ---

  /** DATA from the peer. Throws ProtocolError if it exceeds the window (a peer fault). */
  onData(data: Uint8Array): void {
    if (this.recvEof) throw new ProtocolError("channel-state", "data after EOF");
    this.received += data.length;
    if (this.received > VCHAN_WINDOW_BYTES) throw new ProtocolError("flow-control");
    if (this.failure) return; // reset locally: drop
    if (this.readWaiter) {
      const waiter = this.readWaiter;
      this.readWaiter = null;
      waiter.resolve(this.consumed(data));
    } else {
      this.queue.push(data);
    }
  }

  onEof(): void {
    if (this.recvEof) throw new ProtocolError("channel-state", "second EOF");
    this.recvEof = true;
    if (this.readWaiter && this.queue.length === 0) {
      const waiter = this.readWaiter;
      this.readWaiter = null;
      waiter.resolve(null);
    }
    this.maybeFinished();
  }

  onCredit(bytes: number): void {
    this.sendCredit += bytes;
    if (this.sendCredit > VCHAN_WINDOW_BYTES) throw new ProtocolError("flow-control", "credit beyond window");
    for (const w of this.creditWaiters.splice(0)) w.resolve();
  }

  onReset(reason: ResetReason): void {
    this.fail(new ChannelResetError(reason));
  }

  /** The session ended under this channel. */
  onSessionEnd(error: Error): void {
    this.fail(error);
  }

  private consumed(chunk: Uint8Array): Uint8Array {
    this.consumedSinceGrant += chunk.length;
    // Grant in batches of a quarter window: fewer CREDIT records, still no stall.
    if (this.consumedSinceGrant >= VCHAN_WINDOW_BYTES / 4 && !this.recvEof && !this.failure) {
      const grant = this.consumedSinceGrant;
      this.consumedSinceGrant = 0;
      this.received -= grant;
      this.host.sendControl(this.id, VchanType.CREDIT, grant).catch(() => {});
    }
    if (this.recvEof && this.queue.length === 0) this.maybeFinished();
    return chunk;
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.queue.length = 0;
    this.readWaiter?.reject(error);
    this.readWaiter = null;
    for (const w of this.creditWaiters.splice(0)) w.reject(error);
    this.host.release(this.id);
    this.resolveClosed();
  }

  private maybeFinished(): void {
    if (this.sendEof && this.recvEof && this.queue.length === 0 && !this.failure) {
      this.host.release(this.id);
      this.resolveClosed();
    }
  }
}
