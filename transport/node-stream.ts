/**
 * Node-style streams (node:net sockets, child pipes, tty.ReadStream) as ByteStream halves.
 * node:net is used for TCP and unix sockets under both Bun and Node, so the compiled binary and
 * the Armory's Node bundle run the same code. Measured on loopback with 64 KiB writes (2 vCPU,
 * medians): ~1.35 GB/s under Bun, ~1.15 GB/s under Node; Bun.connect/Bun.listen reached ~2.1
 * GB/s, but the link is capped far lower by sealing (~590 MB/s AES-GCM), so one code path wins.
 *
 * Must never be used on a stream someone else also reads or writes: it owns the stream, and it
 * always listens for 'error' so a peer reset can never crash the process.
 */

import type { Readable, Writable } from "node:stream";
import type { ByteSink, ByteSource, ByteStream } from "./transport.ts";
import { ReadQueue, TransportError, toTransportError } from "./transport.ts";

type Pending = { resolve: () => void; reject: (e: TransportError) => void };

export interface NodeStreamOptions {
  /** Error codes that mean "the other side is gone" and read as EOF (a pty gives EIO). */
  eofCodes?: readonly string[];
}

interface Halves {
  readable: Readable | null;
  writable: Writable | null;
  /** Emits 'close' once the fd/handle is released; destroy() releases it now. */
  handle: Readable | Writable;
}

function adapt(h: Halves, description: string, options: NodeStreamOptions): ByteStream {
  const { readable, writable, handle } = h;
  const queue = new ReadQueue(
    () => readable?.pause(),
    () => readable?.resume(),
  );
  const pending = new Set<Pending>();
  let failure: TransportError | null = null;
  let writeClosed = writable === null;
  let isClosed = false;
  let ended: Promise<void> | null = null;

  const rejectPending = (e: TransportError) => {
    for (const p of pending) p.reject(e);
    pending.clear();
  };
  const closedError = () => new TransportError(`${description}: closed`, "closed");
  const closed = new Promise<void>((resolve) => {
    handle.once("close", () => {
      queue.end();
      rejectPending(failure ?? closedError());
      resolve();
    });
  });

  const onError = (e: NodeJS.ErrnoException) => {
    if (e.code && options.eofCodes?.includes(e.code)) {
      queue.end();
      return;
    }
    failure ??= toTransportError(description, e);
    queue.fail(failure);
    rejectPending(failure);
  };
  handle.on("error", onError);
  if (writable && writable !== handle) writable.on("error", onError);
  if (readable) {
    if (readable !== handle) readable.on("error", onError);
    readable.on("data", (c: Uint8Array) => {
      // A plain view, so slice() copies as callers expect; no bytes are copied here.
      queue.push(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    });
    readable.on("end", () => queue.end());
  } else queue.end();

  return {
    description,
    closed,
    read: () => queue.read(),
    write(data) {
      if (failure || isClosed || writeClosed || !writable) {
        const code = isClosed ? "closed" : "write-closed";
        return Promise.reject(failure ?? new TransportError(`${description}: write after close`, code));
      }
      if (data.length === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const p: Pending = { resolve, reject };
        pending.add(p);
        // The callback runs once the bytes have been handed to the kernel, so the caller may
        // reuse `data` after we resolve; waiting for it is also the backpressure.
        writable.write(data, (e) => {
          if (!pending.delete(p)) return;
          if (e) reject(failure ?? toTransportError(description, e));
          else resolve();
        });
      });
    },
    closeWrite() {
      if (ended) return ended;
      const w = writable;
      if (!w || writeClosed || isClosed || failure) {
        writeClosed = true;
        ended = Promise.resolve();
        return ended;
      }
      writeClosed = true;
      ended = new Promise<void>((resolve) => {
        // A flush failure surfaces on read() (and pending writes); closeWrite only waits for it.
        const p: Pending = { resolve, reject: () => resolve() };
        pending.add(p);
        w.end(() => {
          pending.delete(p);
          resolve();
        });
      });
      return ended;
    },
    close() {
      if (isClosed) return;
      isClosed = true;
      queue.close();
      rejectPending(closedError());
      readable?.destroy();
      writable?.destroy();
    },
  };
}

/** A connected duplex socket (node:net TCP or unix). */
export function duplexStream(
  s: Readable & Writable,
  description: string,
  options: NodeStreamOptions = {},
): ByteStream {
  return adapt({ readable: s, writable: s, handle: s }, description, options);
}

/** A read-only stream (a child's stdout, a tty.ReadStream). */
export function readableSource(
  r: Readable,
  description: string,
  options: NodeStreamOptions = {},
): ByteSource {
  return adapt({ readable: r, writable: null, handle: r }, description, options);
}

/** A write-only stream (a child's stdin). EPIPE (the child stopped reading) rejects writes. */
export function writableSink(w: Writable, description: string): ByteSink {
  return adapt({ readable: null, writable: w, handle: w }, description, {});
}
