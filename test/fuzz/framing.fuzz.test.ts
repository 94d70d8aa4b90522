/**
 * Property and fuzz tests for the link framing (core/wire: COBS, serial frames, TCP frames).
 * Guarantees shown: arbitrary input gives a value or a ProtocolError, never another exception;
 * everything round-trips; the serial reader never delivers corrupted data, always recovers the
 * frames that corruption did not touch, and holds bounded memory.
 *
 * Runs: FUZZ_RUNS (default 300). The seeds in test/vectors/framing (their expected outcomes are
 * checked in core/wire/serial-frame.test.ts and tcp-frame.test.ts) are the first inputs of the
 * decoder properties here.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { concatBytes } from "../../core/bytes.ts";
import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from "../../core/wire/cobs.ts";
import { NOISE_MAX_MESSAGE, SERIAL_MAX_BODY } from "../../core/wire/limits.ts";
import {
  decodeSerialFrame,
  encodeSerialFrame,
  SERIAL_MAX_ENCODED,
  type SerialFrame,
  SerialFrameReader,
  SerialFrameType,
} from "../../core/wire/serial-frame.ts";
import { encodeTcpFrame, TcpFrameReader } from "../../core/wire/tcp-frame.ts";
import { chunked } from "../helpers/chunks.ts";
import { filled, outcome } from "../helpers/outcome.ts";
import { loadFramingSeeds } from "../vectors/framing-corpus.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
/** Per-test timeout that grows with the run count (`bun run fuzz` uses 20000 runs). */
const TIMEOUT = 120_000 + RUNS * 10; // generous: a loaded CI machine must not fail a property test on time
const seeds = loadFramingSeeds();
/** The corpus seeds of one target as fast-check examples: whole, then one byte at a time. */
const examples = (target: "serial" | "tcp"): [Uint8Array, number[]][] =>
  seeds
    .filter((s) => s.target === target)
    .flatMap((s): [Uint8Array, number[]][] => [
      [s.bytes, []],
      [s.bytes, [1]],
    ]);

const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc.array(fc.constantFrom(0, 1, 2, 0xff, 0xfe), { maxLength: 600 }).map((a) => Uint8Array.from(a)),
);
const sizesArb = fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 8 });

describe("arbitrary bytes give a value or a ProtocolError only", () => {
  test(
    "cobsDecode",
    () => {
      fc.assert(
        fc.property(bytesArb, fc.integer({ min: 0, max: 700 }), (bytes, max) => {
          const got = outcome(() => cobsDecode(bytes, max));
          if ("ok" in got) {
            expect(got.ok.length).toBeLessThanOrEqual(max);
            expect(cobsDecode(cobsEncode(got.ok), max)).toEqual(got.ok);
          }
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );

  test(
    "decodeSerialFrame and SerialFrameReader",
    () => {
      fc.assert(
        fc.property(bytesArb, sizesArb, (bytes, sizes) => {
          outcome(() => decodeSerialFrame(bytes));
          const r = new SerialFrameReader();
          for (const c of chunked(bytes, sizes)) {
            r.push(c); // never throws, not even a ProtocolError
            expect(r.pendingBytes).toBeLessThanOrEqual(SERIAL_MAX_ENCODED);
          }
          expect([...r.drain()].length).toBe(r.framesOk);
        }),
        { numRuns: RUNS, examples: examples("serial") },
      );
    },
    TIMEOUT,
  );

  test(
    "TcpFrameReader: frames, when any, are exactly a prefix of the input",
    () => {
      const tcpBytesArb = fc.oneof(
        bytesArb,
        fc
          .array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.uint8Array({ maxLength: 40 })), {
            maxLength: 10,
          })
          .map((parts) => concatBytes(parts.map(([n, b]) => concatBytes([new Uint8Array([0, n]), b])))),
      );
      fc.assert(
        fc.property(tcpBytesArb, sizesArb, (bytes, sizes) => {
          const r = new TcpFrameReader();
          const frames: Uint8Array[] = [];
          outcome(() => {
            for (const c of chunked(bytes, sizes)) {
              r.push(c);
              for (const f of r.drain()) frames.push(f); // keep frames before a throw
            }
          });
          const rebuilt = concatBytes(frames.map((f) => encodeTcpFrame(f)));
          expect(rebuilt).toEqual(bytes.subarray(0, rebuilt.length));
        }),
        { numRuns: RUNS, examples: examples("tcp") },
      );
    },
    TIMEOUT,
  );
});

const bodyArb = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: SERIAL_MAX_BODY }), fc.integer(), fc.constantFrom(0, 1, 7, 300))
      .map(([n, seed, z]) => filled(n, seed, z)),
  },
);
const frameArb = (counter: bigint): fc.Arbitrary<SerialFrame> =>
  fc.record({
    type: fc.constantFrom(SerialFrameType.HANDSHAKE, SerialFrameType.TRANSPORT),
    epoch: fc.integer({ min: 0, max: 255 }),
    counter: fc.constant(counter),
    body: bodyArb,
  });

describe("round trips", () => {
  test(
    "COBS",
    () => {
      const arb = fc.oneof(
        bytesArb,
        fc
          .tuple(fc.integer({ min: 0, max: 3000 }), fc.integer(), fc.constantFrom(0, 1, 2, 254, 255))
          .map(([n, s, z]) => filled(n, s, z)),
      );
      fc.assert(
        fc.property(arb, (raw) => {
          const enc = cobsEncode(raw);
          expect(enc.includes(0)).toBe(false);
          expect(enc.length).toBeLessThanOrEqual(cobsMaxEncodedLength(raw.length));
          expect(cobsDecode(enc, raw.length)).toEqual(raw);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );

  test(
    "serial frame",
    () => {
      fc.assert(
        fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).chain(frameArb), fc.boolean(), (f, lead) => {
          expect(decodeSerialFrame(encodeSerialFrame(f, { leadingDelimiter: lead }))).toEqual(f);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );

  test(
    "TCP frames under any chunking",
    () => {
      const msgArb = fc.oneof(
        { weight: 4, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }) },
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.integer({ min: NOISE_MAX_MESSAGE - 3, max: NOISE_MAX_MESSAGE }), fc.integer())
            .map(([n, s]) => filled(n, s)),
        },
      );
      fc.assert(
        fc.property(fc.array(msgArb, { maxLength: 6 }), sizesArb, (msgs, sizes) => {
          const r = new TcpFrameReader();
          const got: Uint8Array[] = [];
          for (const c of chunked(concatBytes(msgs.map(encodeTcpFrame)), sizes)) {
            r.push(c);
            got.push(...r.drain());
          }
          expect(got).toEqual(msgs);
          r.end();
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );
});

type Damage =
  | { kind: "none" }
  | { kind: "flip"; at: number; bit: number }
  | { kind: "drop"; at: number }
  | { kind: "zero-out"; at: number };

const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: "none" as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("drop" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("zero-out" as const), at: fc.nat() }) },
);
const garbageArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(new Uint8Array(0)) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 100 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 100 }).map((g) => g.map((b) => b | 1)) },
  // Longer than the reader's cap, no zero: exercises overflow and discard.
  { weight: 1, arbitrary: fc.integer().map((s) => filled(SERIAL_MAX_ENCODED + 500, s).map((b) => b | 0x80)) },
);

describe("SerialFrameReader under line damage", () => {
  test(
    "delivers only sent frames, byte-identical, and every undamaged one",
    () => {
      const caseArb = fc
        .integer({ min: 1, max: 12 })
        .chain((n) =>
          fc.tuple(
            fc.tuple(...Array.from({ length: n }, (_, i) => frameArb(BigInt(i)))),
            fc.array(fc.tuple(garbageArb, damageArb), { minLength: n, maxLength: n }),
            fc.boolean(),
          ),
        );
      fc.assert(
        fc.property(caseArb, sizesArb, ([frames, noise, trailingGarbage], sizes) => {
          const parts: Uint8Array[] = [];
          const intact = new Set<bigint>();
          frames.forEach((f, i) => {
            const [garbage, damage] = noise[i]!;
            parts.push(garbage);
            // A leading delimiter separates each frame from garbage before it, so damage to one
            // frame (its delimiters included) can cost that frame only.
            const enc = encodeSerialFrame(f, { leadingDelimiter: true }).slice();
            if (damage.kind === "none") {
              intact.add(f.counter);
              parts.push(enc);
              return;
            }
            const at = damage.at % enc.length;
            if (damage.kind === "flip") enc[at]! ^= 1 << damage.bit;
            if (damage.kind === "zero-out") enc[at] = enc[at] === 0 ? 1 : 0;
            parts.push(
              damage.kind === "drop" ? concatBytes([enc.subarray(0, at), enc.subarray(at + 1)]) : enc,
            );
          });
          if (trailingGarbage) parts.push(new Uint8Array([1, 2, 3]));
          const r = new SerialFrameReader();
          const got: SerialFrame[] = [];
          for (const c of chunked(concatBytes(parts), sizes)) {
            r.push(c);
            expect(r.pendingBytes).toBeLessThanOrEqual(SERIAL_MAX_ENCODED);
            got.push(...r.drain());
          }
          const seen = new Set<bigint>();
          for (const g of got) {
            expect(seen.has(g.counter)).toBe(false);
            seen.add(g.counter);
            expect(g).toEqual(frames[Number(g.counter)]!);
          }
          for (const c of intact) expect(seen.has(c)).toBe(true);
          expect(r.framesOk).toBe(got.length);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );
});
