/**
 * Property and fuzz tests for the link framing (core/wire: COBS, serial frames, TCP frames).
 * Guarantees shown: arbitrary input gives a value or a ProtocolError, never another exception;
 * everything round-trips; the serial reader never delivers corrupted data, always recovers the
 * frames that corruption did not touch, and holds bounded memory.
 *
 * Runs: FUZZ_RUNS (default 300). Edge seeds: corpus/framing/*.hex, one input per file:
 *   "# target: serial|tcp", "# expect: ok|incomplete|<ProtocolErrorCode>", optional
 *   "# frames: N" (tcp), then hex lines (whitespace ignored) or "*COUNT BYTE" repeat lines.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { ProtocolError } from "../../core/errors.ts";
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

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
/** Per-test timeout that grows with the run count (`bun run fuzz` uses 20000 runs). */
const TIMEOUT = 5000 + RUNS * 3;
const CORPUS = join(import.meta.dir, "corpus", "framing");

/** Runs f; a ProtocolError becomes its code, any other exception fails the test. */
function outcome<T>(f: () => T): { ok: T } | { code: string } {
  try {
    return { ok: f() };
  } catch (e) {
    if (e instanceof ProtocolError) return { code: e.code };
    throw e;
  }
}

/** Deterministic filler, so big bodies cost no per-byte generation. */
function filled(n: number, seed: number, zeroEvery = 0): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = zeroEvery && i % zeroEvery === 0 ? 0 : x >>> 24;
  }
  return b;
}

function chunked(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const n = sizes.length ? Math.max(1, sizes[k % sizes.length]!) : bytes.length;
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc.array(fc.constantFrom(0, 1, 2, 0xff, 0xfe), { maxLength: 600 }).map((a) => Uint8Array.from(a)),
);
const sizesArb = fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 8 });

describe("corpus/framing", () => {
  const files = readdirSync(CORPUS).filter((f) => f.endsWith(".hex"));
  test("has seeds", () => expect(files.length).toBeGreaterThanOrEqual(15));
  for (const file of files) {
    test(file, () => {
      const text = readFileSync(join(CORPUS, file), "utf8");
      const meta = (key: string) => text.match(new RegExp(`^# ${key}: (\\S+)$`, "m"))?.[1];
      const bytes = parseHex(text);
      const want = meta("expect")!;
      if (meta("target") === "serial") {
        const got = outcome(() => decodeSerialFrame(bytes));
        expect("ok" in got ? "ok" : got.code).toBe(want);
        const r = new SerialFrameReader();
        r.push(bytes);
        r.push(new Uint8Array([0]));
        expect(r.framesOk).toBe(want === "ok" ? 1 : 0);
        if (want === "ok") expect(r.next()).toEqual((got as { ok: SerialFrame }).ok);
      } else {
        expect(meta("target")).toBe("tcp");
        for (const sizes of [[bytes.length], [1], [3, 1000]]) {
          const r = new TcpFrameReader();
          const frames: Uint8Array[] = [];
          const got = outcome(() => {
            for (const c of chunked(bytes, sizes)) {
              r.push(c);
              for (const f of r.drain()) frames.push(f); // keep frames before a throw
            }
          });
          expect(frames.length).toBe(Number(meta("frames")));
          if (want === "ok" || want === "incomplete") {
            expect("ok" in got).toBe(true);
            expect(outcome(() => r.end())).toEqual(
              want === "ok" ? { ok: undefined } : { code: "frame-truncated" },
            );
          } else {
            expect(got).toEqual({ code: want });
          }
        }
      }
    });
  }
});

function parseHex(text: string): Uint8Array {
  const out: number[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.trim()) continue;
    const rep = line.match(/^\*(\d+) ([0-9a-f]{2})$/);
    if (rep) {
      for (let i = Number(rep[1]); i > 0; i--) out.push(Number.parseInt(rep[2]!, 16));
      continue;
    }
    const hex = line.replace(/\s+/g, "");
    expect(hex).toMatch(/^([0-9a-f]{2})*$/);
    for (let i = 0; i < hex.length; i += 2) out.push(Number.parseInt(hex.slice(i, i + 2), 16));
  }
  return Uint8Array.from(out);
}

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
        { numRuns: RUNS },
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
          .map((parts) => concat(parts.map(([n, b]) => concat([new Uint8Array([0, n]), b])))),
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
          const rebuilt = concat(frames.map((f) => encodeTcpFrame(f)));
          expect(rebuilt).toEqual(bytes.subarray(0, rebuilt.length));
        }),
        { numRuns: RUNS },
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
          for (const c of chunked(concat(msgs.map(encodeTcpFrame)), sizes)) {
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
            parts.push(damage.kind === "drop" ? concat([enc.subarray(0, at), enc.subarray(at + 1)]) : enc);
          });
          if (trailingGarbage) parts.push(new Uint8Array([1, 2, 3]));
          const r = new SerialFrameReader();
          const got: SerialFrame[] = [];
          for (const c of chunked(concat(parts), sizes)) {
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
