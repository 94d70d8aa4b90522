/**
 * A minimal connected pair of core Duplex streams for core unit tests (no transport/ needed).
 * Writes resolve at once; EOF on close. Not a ByteStream: the contract suite covers those.
 */
import type { Duplex } from "../../core/session/duplex.ts";

class End implements Duplex {
  queue: Uint8Array[] = [];
  waiter: ((v: Uint8Array | null) => void) | null = null;
  peer!: End;
  eof = false;
  /** Bytes written so far, for tests that tamper with or count traffic. */
  tap: ((chunk: Uint8Array) => Uint8Array | null) | null = null;

  read(): Promise<Uint8Array | null> {
    const c = this.queue.shift();
    if (c) return Promise.resolve(c);
    if (this.eof) return Promise.resolve(null);
    return new Promise((r) => {
      this.waiter = r;
    });
  }
  write(data: Uint8Array): Promise<void> {
    if (this.peer.eof) return Promise.reject(new Error("closed"));
    const chunk = this.tap ? this.tap(data.slice()) : data.slice();
    if (chunk) this.peer.deliver(chunk);
    return Promise.resolve();
  }
  deliver(c: Uint8Array): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(c);
    } else this.queue.push(c);
  }
  close(): void {
    for (const e of [this, this.peer]) {
      e.eof = true;
      if (e.waiter && e.queue.length === 0) {
        const w = e.waiter;
        e.waiter = null;
        w(null);
      }
    }
  }
}

export function duplexPair(): [End, End] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
