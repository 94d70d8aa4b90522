/**
 * The ByteStream contract (transport/transport.ts) as one bun:test suite, run against every
 * transport: memory, TCP, unix socket, serial over a pty. A transport that passes it can carry
 * the link. Waits are on events; the only timers are upper bounds that fail a test.
 *
 * Must never leave a stream or process open: every pair is closed in afterEach.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { AssertionError } from "../../core/errors.ts";
import { type ByteStream, TransportError } from "../../transport/transport.ts";

export interface ContractTarget {
  name: string;
  /** A connected pair; the suite closes both ends and then calls cleanup(). */
  pair(): Promise<[ByteStream, ByteStream]>;
  cleanup?(): Promise<void>;
  /** closeWrite() gives the peer EOF (false for serial: a line has no half-close). */
  halfClose: boolean;
  /** The peer's close() gives us EOF (false for serial: nothing on the line says so). */
  peerCloseEof: boolean;
  /** Takes the line away under both ends (serial: kill socat); reads must then see EOF. */
  lineGone?(): Promise<void>;
  /** Bytes per direction in the bulk test (default 4 MiB). */
  bulkBytes?: number;
  /** A writer that nobody reads from must stall before this many bytes (kernel buffers count). */
  stallBound: number;
}

/** Resolves with how the promise settled, or "pending" if it is still open after `ms`. */
export function settleWithin<T>(p: Promise<T>, ms: number): Promise<"resolved" | "rejected" | "pending"> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve("pending"), ms);
    const settle = (how: "resolved" | "rejected") => () => {
      clearTimeout(t);
      resolve(how);
    };
    p.then(settle("resolved"), settle("rejected"));
  });
}

/** Writes `total` random bytes in chunks of varying size from ONE reused buffer; returns sha256. */
export async function writeRandom(s: ByteStream, total: number): Promise<string> {
  const h = createHash("sha256");
  const buf = new Uint8Array(64 * 1024);
  let sent = 0;
  for (let i = 0; sent < total; i++) {
    const n = Math.min(total - sent, 1 + ((i * 7919) % buf.length));
    // Refilling the same buffer right after each write resolves checks that a resolved write
    // no longer refers to the caller's bytes.
    const chunk = buf.subarray(0, n);
    chunk.set(randomBytes(n));
    h.update(chunk);
    await s.write(chunk);
    sent += n;
  }
  return h.digest("hex");
}

/** Reads `total` bytes (or to EOF), keeping every chunk until the end: a stream that reused a
 * chunk it had handed out would change the hash. */
export async function readAll(
  s: ByteStream,
  total = Number.POSITIVE_INFINITY,
): Promise<{ n: number; sha: string }> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  while (n < total) {
    const c = await s.read();
    if (!c) break;
    expect(c.length).toBeGreaterThan(0);
    chunks.push(c);
    n += c.length;
  }
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return { n, sha: h.digest("hex") };
}

/** Writes until a write stays pending for `ms`; returns the bytes accepted and that write. */
async function writeUntilStalled(s: ByteStream, bound: number, ms = 300) {
  const chunk = new Uint8Array(64 * 1024).fill(0x5a);
  let accepted = 0;
  while (accepted <= bound) {
    const w = s.write(chunk);
    if ((await settleWithin(w, ms)) === "pending") return { accepted, pending: w };
    await w;
    accepted += chunk.length;
  }
  throw new Error(`writer never stalled after ${accepted} bytes with nobody reading`);
}

export function streamContract(t: ContractTarget): void {
  describe(`ByteStream contract: ${t.name}`, () => {
    let open: ByteStream[] = [];
    const pair = async () => {
      const p = await t.pair();
      open.push(...p);
      return p;
    };
    afterEach(async () => {
      for (const s of open) s.close();
      await Promise.all(open.map((s) => s.closed));
      open = [];
      await t.cleanup?.();
    });

    test("bytes arrive in order and identical, both directions at once", async () => {
      const [a, b] = await pair();
      const total = t.bulkBytes ?? 4 * 1024 * 1024;
      const [shaAB, shaBA, gotB, gotA] = await Promise.all([
        writeRandom(a, total),
        writeRandom(b, total),
        readAll(b, total),
        readAll(a, total),
      ]);
      expect(gotB).toEqual({ n: total, sha: shaAB });
      expect(gotA).toEqual({ n: total, sha: shaBA });
    }, 60_000);

    test("backpressure: a writer nobody reads from stalls, then everything arrives", async () => {
      const [a, b] = await pair();
      const { accepted, pending } = await writeUntilStalled(a, t.stallBound);
      expect(accepted).toBeLessThan(t.stallBound);
      const got = readAll(b, accepted + 64 * 1024);
      await pending;
      expect((await got).n).toBe(accepted + 64 * 1024);
    }, 30_000);

    test("close() settles a pending read with null, and later reads too", async () => {
      const [a] = await pair();
      const r = a.read();
      a.close();
      expect(await r).toBeNull();
      expect(await a.read()).toBeNull();
      await a.closed;
    });

    test("close() rejects a write that is waiting for room", async () => {
      const [a] = await pair();
      const { pending } = await writeUntilStalled(a, t.stallBound);
      a.close();
      expect(await pending.catch((e) => e)).toBeInstanceOf(TransportError);
    }, 30_000);

    test("write after close() or closeWrite() rejects with TransportError", async () => {
      const [a, b] = await pair();
      await a.closeWrite();
      await a.closeWrite(); // idempotent
      expect(await a.write(new Uint8Array([1])).catch((e) => e)).toBeInstanceOf(TransportError);
      b.close();
      b.close(); // idempotent
      expect(await b.write(new Uint8Array([1])).catch((e) => e)).toBeInstanceOf(TransportError);
    });

    test("a zero-length write is a no-op, not EOF", async () => {
      const [a, b] = await pair();
      await a.write(new Uint8Array(0));
      await a.write(new Uint8Array([7]));
      expect(await b.read()).toEqual(new Uint8Array([7]));
    });

    test("a second concurrent read is a bug (AssertionError)", async () => {
      const [a] = await pair();
      const first = a.read();
      const second = Promise.resolve().then(() => a.read());
      expect(await second.catch((e) => e)).toBeInstanceOf(AssertionError);
      a.close();
      expect(await first).toBeNull();
    });

    test("description names the transport", async () => {
      const [a] = await pair();
      expect(a.description.length).toBeGreaterThan(3);
    });

    if (t.halfClose) {
      test("half-close: the peer reads everything then EOF, and can still answer", async () => {
        const [a, b] = await pair();
        await a.write(new TextEncoder().encode("request"));
        await a.closeWrite();
        const req = await readAll(b);
        expect(req.n).toBe(7);
        await b.write(new TextEncoder().encode("reply!"));
        await b.closeWrite();
        expect((await readAll(a)).n).toBe(6);
        // Both directions ended: the stream releases itself, close() is still safe.
        await Promise.all([a.closed, b.closed]);
        a.close();
      });
    }

    if (t.peerCloseEof) {
      test("the peer's close() reads as EOF after the bytes it sent", async () => {
        const [a, b] = await pair();
        await b.write(new Uint8Array([1, 2, 3]));
        b.close();
        expect((await readAll(a)).n).toBe(3);
        expect(await a.read()).toBeNull();
      });
    }

    if (t.lineGone) {
      test("the line going away reads as EOF and fails writes", async () => {
        const [a] = await pair();
        const r = a.read();
        await t.lineGone!();
        expect(await r).toBeNull();
        const w = await a.write(new Uint8Array(1024)).catch((e) => e);
        expect(w).toBeInstanceOf(TransportError);
      });
    }
  });
}
