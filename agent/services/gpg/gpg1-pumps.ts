/**
 * The data path of split-gpg v1 on the device: client frames to gpg's input pipes, and every
 * gpg output pipe to frames, each drained by its own task so gpg can never block on one pipe
 * while we wait on another (QubesOS/qubes-issues#7530, split-gpg PR #79).
 *
 * Inputs: each pipe has a queue and a writer task. Reading from the client pauses while a queue
 * is over its allowance; stdin's allowance is larger while the --verify signature pipe is still
 * open, because gpg reads the whole signature before the data and the client interleaves them.
 * Must never: hold more than the allowances (plus one client read) of the client's bytes.
 */
import { encodeFrame, encodeFrames, FrameReader } from "../../../core/gpg/v1-wire.ts";
import type { ByteSink, ByteSource } from "../../../transport/transport.ts";

export const STDIN_ALLOWANCE = 256 * 1024;
export const STDIN_ALLOWANCE_WHILE_SIGNATURE = 8 * 1024 * 1024;
export const SIGNATURE_ALLOWANCE = 1024 * 1024;

/** A queue in front of one child input pipe. Write errors (gpg stopped reading) drop data. */
class InputQueue {
  queued = 0;
  closed = false;
  private chunks: Uint8Array[] = [];
  private wake: (() => void) | null = null;
  private drained: (() => void)[] = [];
  readonly done: Promise<void>;

  constructor(private readonly sink: ByteSink) {
    this.done = this.run();
  }

  push(data: Uint8Array): void {
    if (this.closed) return;
    this.chunks.push(data);
    this.queued += data.length;
    this.wake?.();
  }

  end(): void {
    this.closed = true;
    this.wake?.();
  }

  /** Resolves once at most `limit` bytes wait. */
  below(limit: number): Promise<void> {
    if (this.queued <= limit) return Promise.resolve();
    return new Promise((r) => {
      const check = () => (this.queued <= limit ? r() : this.drained.push(check));
      this.drained.push(check);
    });
  }

  private async run(): Promise<void> {
    let broken = false;
    for (;;) {
      const c = this.chunks.shift();
      if (!c) {
        if (this.closed) break;
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
        continue;
      }
      if (!broken) await this.sink.write(c).catch(() => (broken = true));
      this.queued -= c.length;
      const waiters = this.drained;
      this.drained = [];
      for (const w of waiters) w();
    }
    await this.sink.closeWrite().catch(() => {});
  }
}

export interface InputStats {
  bytes: number;
}

/**
 * Waits for `p` unless `signal` aborts first (then "stopped"). Unlike Promise.race with a
 * long-lived promise, it leaves nothing attached once it settles: racing every read against
 * one "stop" promise kept every chunk alive until the end of the call.
 */
function unlessStopped<T>(p: Promise<T>, signal: AbortSignal): Promise<T | "stopped"> {
  if (signal.aborted) return Promise.resolve("stopped");
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve("stopped");
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Reads client frames (after the header) until the client's EOF or `stop`, feeding the child's
 * inputs (index = frame fd). Throws V1WireError on a framing fault, or `over()` when more than
 * `maxBytes` of data arrived.
 */
export async function pumpClientInput(
  first: Uint8Array,
  src: ByteSource,
  sinks: readonly ByteSink[],
  o: { maxBytes: number; stop: AbortSignal; stats: InputStats; over: () => Error },
): Promise<void> {
  const reader = new FrameReader(sinks.length, false);
  const queues = sinks.map((s) => new InputQueue(s));
  try {
    let chunk: Uint8Array | null = first;
    for (;;) {
      if (chunk === null) {
        reader.end();
        break;
      }
      if (chunk.length > 0) {
        reader.push(chunk);
        const batch = new Map<number, Uint8Array[]>();
        for (let f = reader.next(); f; f = reader.next()) {
          if (f.kind === "exit") continue; // FrameReader(allowExit=false) never yields it
          if (f.kind === "eof") {
            flush(batch, queues);
            queues[f.fd]!.end();
            continue;
          }
          o.stats.bytes += f.data.length;
          if (o.stats.bytes > o.maxBytes) throw o.over();
          const list = batch.get(f.fd) ?? [];
          list.push(f.data);
          batch.set(f.fd, list);
        }
        flush(batch, queues);
      }
      chunk = null;
      // Backpressure: wait for gpg to take what is queued before reading more.
      const sigOpen = queues.length > 1 && !queues[1]!.closed;
      const room = Promise.all(
        queues.map((q, k) =>
          q.below(
            k === 0 ? (sigOpen ? STDIN_ALLOWANCE_WHILE_SIGNATURE : STDIN_ALLOWANCE) : SIGNATURE_ALLOWANCE,
          ),
        ),
      );
      if ((await unlessStopped(room, o.stop)) === "stopped") break;
      const next = await unlessStopped(src.read(), o.stop);
      if (next === "stopped") break;
      chunk = next;
    }
  } finally {
    for (const q of queues) q.end();
  }
  await unlessStopped(Promise.all(queues.map((q) => q.done)), o.stop);
}

function flush(batch: Map<number, Uint8Array[]>, queues: InputQueue[]): void {
  for (const [fd, parts] of batch) {
    if (parts.length === 1) queues[fd]!.push(parts[0]!);
    else {
      const n = parts.reduce((a, p) => a + p.length, 0);
      const out = new Uint8Array(n);
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      queues[fd]!.push(out);
    }
  }
  batch.clear();
}

/** Serialises frame writes to the client (whole frames, in the order sent). */
export class FrameWriter {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly sink: ByteSink) {}
  send(bytes: Uint8Array): Promise<void> {
    const next = this.tail.then(() => this.sink.write(bytes));
    this.tail = next.catch(() => {});
    return next;
  }
}

/**
 * Drains one gpg output pipe into frames for list index `index`, then its EOF frame. Counts
 * bytes into `stats`; past `maxBytes` it calls `over` and keeps draining without sending.
 */
export async function pumpOutput(
  src: ByteSource,
  index: number,
  out: FrameWriter,
  o: { maxBytes: number; stats: InputStats; over: () => void },
): Promise<void> {
  let dropping = false;
  for (;;) {
    const c = await src.read().catch(() => null);
    if (c === null) break;
    o.stats.bytes += c.length;
    if (o.stats.bytes > o.maxBytes && !dropping) {
      dropping = true;
      o.over();
    }
    if (!dropping) await out.send(encodeFrames(index, c)).catch(() => (dropping = true));
  }
  if (!dropping) await out.send(encodeFrame(index, new Uint8Array(0))).catch(() => {});
}
