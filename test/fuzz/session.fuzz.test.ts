/**
 * Property and fuzz tests for the transport phase: what a Session does with arbitrary decrypted
 * records, and what TcpRecordLink and SerialRecordLink do with arbitrary bytes from the wire.
 *
 * Session: a scripted session (test/helpers/session-script.ts) plays random records (random
 * bytes, every kind with random or well-formed bodies, real rekey messages from a simulated peer,
 * vchan messages) interleaved with local actions (ping, rekey, confirm, open, close). Guarantees
 * shown: the session either keeps running or ends with a ProtocolError (or null for an orderly
 * close) on `closed`; dispatch never throws anything else; no record is dispatched after the
 * session ended; vchan records never pass before both pairing confirmations (nor a confirmation
 * before the pairing code's reveal was checked); every record it
 * sends is well-formed; no unhandled rejection (bun test fails a test on any; each run waits a
 * few macrotasks so they surface inside it). The fixed cases are in core/session/session.test.ts.
 *
 * TcpRecordLink and SerialRecordLink: arbitrary chunks, and valid encrypted records with
 * corruption, give records, null at EOF, or a ProtocolError; never a corrupted record, never a
 * record after a failure.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { concatBytes, equalBytes } from "../../core/bytes.ts";
import type { Duplex } from "../../core/session/duplex.ts";
import type { HandshakeMode } from "../../core/session/messages.ts";
import { RecordKind } from "../../core/session/messages.ts";
import type { RecordLink } from "../../core/session/record-link.ts";
import { SerialRecordLink } from "../../core/session/serial-record-link.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { encodeVchan, VchanType } from "../../core/vchan/messages.ts";
import { encodeSerialFrame, SerialFrameType } from "../../core/wire/serial-frame.ts";
import { encodeTcpFrame } from "../../core/wire/tcp-frame.ts";
import { duplexPair } from "../helpers/duplex-pair.ts";
import {
  drainRecords,
  expectHealthy,
  keyedCipher,
  runSession,
  type Step,
} from "../helpers/session-script.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };
const TIMEOUT = 120_000 + RUNS * 10; // generous: a loaded CI machine must not fail a property test on time

const u64 = (n: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, false);
  return b;
};

const kindArb = fc.integer({ min: 0, max: 9 });
const recordArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 80 }) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(kindArb, fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 12 })))
      .map(([k, body]) => Uint8Array.of(k, ...body)),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(RecordKind.PING, RecordKind.PONG), fc.bigInt({ min: 0n, max: 4n }))
      .map(([k, id]) => Uint8Array.of(k, ...u64(id))),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      Uint8Array.of(RecordKind.PAIR_CONFIRM),
      Uint8Array.of(RecordKind.REKEY_SWITCH),
      Uint8Array.of(RecordKind.CLOSE, 0),
      Uint8Array.of(RecordKind.REKEY),
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom(VchanType.OPEN, VchanType.DATA, VchanType.EOF, VchanType.CREDIT, VchanType.RESET),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 3 }),
      )
      .map(([type, id, v]) => {
        switch (type) {
          case VchanType.OPEN:
            return encodeVchan({ type, id, meta: new Uint8Array(v) });
          case VchanType.DATA:
            return encodeVchan({ type, id, data: new Uint8Array(v + 1) });
          case VchanType.EOF:
            return encodeVchan({ type, id });
          case VchanType.CREDIT:
            return encodeVchan({ type, id, bytes: v + 1 });
          default:
            return encodeVchan({ type: VchanType.RESET, id, reason: v as 0 | 1 | 2 | 3 });
        }
      }),
  },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: recordArb.map((bytes) => ({ t: "record" as const, bytes })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Step>({ t: "rekey-from-peer" }, { t: "rekey-answer" }, { t: "reveal" }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Step>(
      { t: "ping" },
      { t: "rekey" },
      { t: "confirm" },
      { t: "open" },
      { t: "close" },
    ),
  },
);

describe("Session on arbitrary decrypted records", () => {
  test(
    "ends with ProtocolError or null, or keeps running; never anything else",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.constantFrom<HandshakeMode>("reconnect", "pair-code", "pair-psk"),
          fc.array(stepArb, { maxLength: 12 }),
          fc.boolean(),
          async (initiator, mode, steps, hang) =>
            expectHealthy(await runSession(initiator, mode, steps, hang)),
        ),
        params,
      );
    },
    TIMEOUT,
  );
});

// --- The record links on arbitrary wire bytes ---

const chunksArb = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc
      .integer({ min: 1, max: 70 })
      .map((n) => Uint8Array.of(n >> 8, n & 0xff, ...new Uint8Array(Math.min(n, 8)))),
    fc.constantFrom(Uint8Array.of(0, 0), Uint8Array.of(0xff, 0xff), Uint8Array.of(0, 1, 0)),
  ),
  { maxLength: 8 },
);

/** Sealed records, an optional bit flip somewhere in the wire bytes, garbage after, a chunking. */
const corruptedStreamArb = fc.tuple(
  fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 5 }),
  fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 }))),
  chunksArb,
  fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 4 }),
);

/** Writes `wire` into a fresh duplex pair in the given chunk sizes, then EOF; returns the far end. */
async function delivered(wire: Uint8Array, split: number[]) {
  const [a, b] = duplexPair();
  for (let i = 0, k = 0; i < wire.length; k++) {
    const n = split.length ? split[k % split.length]! : wire.length;
    await a.write(wire.subarray(i, i + n));
    i += n;
  }
  a.close();
  return b;
}

function damaged(wire: Uint8Array, flip: [number, number] | null, garbage: Uint8Array[]): Uint8Array {
  let out = wire;
  if (flip) {
    out = wire.slice();
    out[flip[0] % out.length]! ^= flip[1];
  }
  return concatBytes([out, ...garbage]);
}

type CorruptedStream = [Uint8Array[], [number, number] | null, Uint8Array[], number[]];

/**
 * `wire` is what a sender wrote for the records; the receiving link (from `open`) reads it damaged
 * and split as the case says, and must give only records that were sent, in order; all of them
 * and then EOF when the wire was intact.
 */
async function checkReceived(
  [records, flip, garbage, split]: CorruptedStream,
  wire: Uint8Array,
  open: (stream: Duplex) => RecordLink,
): Promise<void> {
  const link = open(await delivered(damaged(wire, flip, garbage), split));
  link.setRecvKey(keyedCipher(5));
  const out = await drainRecords(() => link.recv());
  expect(out.records.length).toBeLessThanOrEqual(records.length);
  for (const [i, r] of out.records.entries()) expect(equalBytes(r, records[i]!)).toBe(true);
  if (!flip && garbage.every((g) => g.length === 0))
    expect([out.records.length, out.end]).toEqual([records.length, "eof"]);
}

/** The frames a SerialRecordLink writes for `records`: what a real peer sends. */
async function serialWire(records: Uint8Array[]): Promise<Uint8Array> {
  const [tx, rx] = duplexPair();
  const sender = new SerialRecordLink(tx, 1n);
  sender.setSendKey(keyedCipher(5));
  const frames: Uint8Array[] = [];
  tx.tap = (chunk) => {
    frames.push(chunk);
    return null;
  };
  for (const r of records) await sender.send(r);
  rx.close();
  return concatBytes(frames);
}

describe("TcpRecordLink on arbitrary bytes", () => {
  test(
    "recvHandshake: a frame within the handshake limit, or ProtocolError",
    async () => {
      await fc.assert(
        fc.asyncProperty(chunksArb, async (chunks) => {
          const link = new TcpRecordLink(await delivered(concatBytes(chunks), []));
          const out = await drainRecords(() => link.recvHandshake());
          expect(out.end).not.toBe("eof"); // EOF in a handshake is link-lost
          for (const m of out.records) expect(m.length).toBeLessThanOrEqual(32 + 48 + 1024 + 16);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "recv: only the records that were sent, in order, then null or ProtocolError",
    async () => {
      await fc.assert(
        fc.asyncProperty(corruptedStreamArb, async (c) => {
          const sender = keyedCipher(5);
          const wire = concatBytes(
            c[0].map((r) => encodeTcpFrame(sender.encryptWithAd(new Uint8Array(0), r))),
          );
          await checkReceived(c, wire, (stream) => new TcpRecordLink(stream));
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

describe("SerialRecordLink on arbitrary bytes", () => {
  test(
    "recvHandshake: a body of a handshake frame with our attempt id, or ProtocolError",
    async () => {
      const handshakeFrameArb = fc
        .tuple(fc.constantFrom(1n, 2n), fc.uint8Array({ minLength: 1, maxLength: 40 }))
        .map(([counter, body]) =>
          encodeSerialFrame({ type: SerialFrameType.HANDSHAKE, epoch: 0, counter, body }),
        );
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.oneof(fc.uint8Array({ maxLength: 64 }), handshakeFrameArb), { maxLength: 6 }),
          async (chunks) => {
            const link = new SerialRecordLink(await delivered(concatBytes(chunks), []), 1n);
            const out = await drainRecords(() => link.recvHandshake());
            expect(out.end).toBe("link-lost"); // EOF in a handshake
            for (const m of out.records) expect(m.length).toBeGreaterThan(0);
          },
        ),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "recv: only the records that were sent, in order, then null or ProtocolError",
    async () => {
      await fc.assert(
        fc.asyncProperty(corruptedStreamArb, async (c) => {
          await checkReceived(c, await serialWire(c[0]), (stream) => new SerialRecordLink(stream));
        }),
        params,
      );
    },
    TIMEOUT,
  );
});
