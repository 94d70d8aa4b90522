/**
 * Property and fuzz tests for the strict CBOR codec (core/wire/cbor.ts): untrusted bytes only ever
 * yield a value or a ProtocolError, the subset has exactly one encoding per value, and we never
 * accept something cborg's strict mode rejects or decode it differently.
 * FUZZ_RUNS sets the runs per property (default 1000; `bun run fuzz` uses 20000).
 */
import { describe, expect, test } from "bun:test";
import { decode as cborgDecode } from "cborg";
import fc from "fast-check";
import { ProtocolError } from "../../core/errors.ts";
import { type CborMap, type CborValue, decodeCbor, encodeCbor } from "../../core/wire/cbor.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const params = { numRuns: RUNS };

const CBORG_STRICT = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  rejectDuplicateMapKeys: true,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: true,
  useMaps: false,
};

/** Decodes, letting only ProtocolError through as "rejected"; anything else fails the property. */
function tryDecode(bytes: Uint8Array): { ok: true; value: CborValue } | { ok: false } {
  try {
    return { ok: true, value: decodeCbor(bytes) };
  } catch (e) {
    if (e instanceof ProtocolError) return { ok: false };
    throw e;
  }
}

/** Deep equality that tells number from bigint and ignores object prototypes. */
function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a);
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && same(ra[k], rb[k]));
  }
  return Object.is(a, b);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// --- Arbitraries for the data model ---
const U64 = 2n ** 64n;
/** The decoder's representation: number within ±(2^53-1), bigint beyond. */
const normalise = (n: bigint): number | bigint => (n >= -(2n ** 53n) + 1n && n < 2n ** 53n ? Number(n) : n);
const integer: fc.Arbitrary<CborValue> = fc.oneof(
  fc.integer({ min: -300, max: 70_000 }),
  fc.maxSafeInteger(),
  fc.bigInt({ min: -U64, max: U64 - 1n }).map(normalise),
  fc
    .constantFrom(
      0n,
      23n,
      24n,
      255n,
      256n,
      65535n,
      65536n,
      2n ** 32n - 1n,
      2n ** 32n,
      2n ** 53n - 1n,
      2n ** 53n,
      U64 - 1n,
    )
    .chain((n) => fc.constantFrom(n, -n, -n - 1n))
    .map(normalise),
);
const text = fc.oneof(fc.string({ unit: "binary", maxLength: 12 }), fc.string({ maxLength: 40 }));
const key = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 6 }) },
  fc.constantFrom(
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
    "",
    "a",
    "aa",
    "b",
    "\u{10000}",
    "\uE000a",
  ),
);
const model: fc.Arbitrary<CborValue> = fc.letrec<{ value: CborValue; array: CborValue[]; map: CborMap }>(
  (tie) => ({
    value: fc.oneof(
      { maxDepth: 6, depthSize: "small", withCrossShrink: true },
      integer,
      text,
      fc.uint8Array({ maxLength: 40 }),
      fc.constantFrom(true, false, null),
      tie("array"),
      tie("map"),
    ),
    array: fc.array(tie("value"), { maxLength: 6 }),
    map: fc
      .uniqueArray(fc.tuple(key, tie("value")), { selector: (e) => e[0], maxLength: 6 })
      .map((entries) => {
        const o = Object.create(null) as CborMap;
        for (const [k, v] of entries) o[k] = v;
        return o;
      }),
  }),
).value;

// --- Mutations of valid encodings ---
type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; byte: number }
  | { kind: "delete"; at: number }
  | { kind: "set"; at: number; byte: number };
const at = fc.nat({ max: 1 << 16 });
const byte = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x5f, 0xff),
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at }),
  fc.record({ kind: fc.constant("insert" as const), at, byte }),
  fc.record({ kind: fc.constant("delete" as const), at }),
  fc.record({ kind: fc.constant("set" as const), at, byte }),
);
function mutate(input: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Uint8Array.from(input);
  for (const m of ms) {
    if (b.length === 0) break;
    const i = m.at % b.length;
    if (m.kind === "flip") b[i]! ^= 1 << m.bit;
    else if (m.kind === "set") b[i] = m.byte;
    else if (m.kind === "truncate") b = b.slice(0, i);
    else if (m.kind === "delete") b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + 1)]);
    else b = Uint8Array.from([...b.subarray(0, i), m.byte, ...b.subarray(i)]);
  }
  return b;
}
const mutated = fc
  .tuple(model, fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([v, ms]) => mutate(encodeCbor(v), ms));
/** Random bytes biased toward CBOR-looking starts, plus mutated valid encodings. */
const untrusted = fc.oneof(fc.uint8Array({ maxLength: 48 }), mutated);

/** Every accepted input is the canonical encoding of what it decodes to. */
function acceptedIsCanonical(bytes: Uint8Array): void {
  const r = tryDecode(bytes);
  if (r.ok) expect(equalBytes(encodeCbor(r.value), bytes)).toBe(true);
}

describe("strict CBOR fuzz", () => {
  test("(a) arbitrary bytes: a value or a ProtocolError, and accepted input is canonical", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), acceptedIsCanonical), params);
  });

  test("(b) model values round-trip and re-encode byte-identically", () => {
    fc.assert(
      fc.property(model, (v) => {
        const bytes = encodeCbor(v);
        const back = decodeCbor(bytes);
        expect(same(back, v)).toBe(true);
        expect(equalBytes(encodeCbor(back), bytes)).toBe(true);
      }),
      params,
    );
  });

  test("(c) mutated valid encodings: a value or a ProtocolError", () => {
    fc.assert(fc.property(mutated, acceptedIsCanonical), params);
  });

  test("(d) differential: whatever we accept, cborg strict accepts with the same value", () => {
    let accepted = 0;
    fc.assert(
      fc.property(untrusted, (bytes) => {
        const ours = tryDecode(bytes);
        let theirs: { ok: true; value: unknown } | { ok: false };
        try {
          theirs = { ok: true, value: cborgDecode(bytes, CBORG_STRICT) };
        } catch {
          theirs = { ok: false };
        }
        if (ours.ok) {
          accepted++;
          expect(theirs.ok).toBe(true);
          if (theirs.ok) expect(same(ours.value, theirs.value)).toBe(true);
        } else if (theirs.ok) {
          // cborg may accept more (floats, unsorted keys...); but if its value is in our model and
          // the input is exactly that value's canonical encoding, rejecting it would be our bug.
          let canonical: Uint8Array | undefined;
          try {
            canonical = encodeCbor(theirs.value as CborValue);
          } catch {
            canonical = undefined;
          }
          if (canonical) expect(equalBytes(canonical, bytes)).toBe(false);
        }
      }),
      params,
    );
    // The mutated half of the inputs must exercise the accepting path, not only rejections.
    expect(accepted).toBeGreaterThan(RUNS / 20);
  });

  test("(e) headers claiming huge lengths are rejected fast, without allocating", () => {
    const head = fc.record({
      major: fc.constantFrom(2, 3, 4, 5),
      width: fc.constantFrom(4, 8),
      length: fc.bigInt({ min: 1n << 16n, max: U64 - 1n }),
      tail: fc.uint8Array({ maxLength: 16 }),
      nest: fc.integer({ min: 0, max: 8 }),
    });
    let slowest = 0;
    fc.assert(
      fc.property(head, ({ major, width, length, tail, nest }) => {
        const n = width === 4 ? length & 0xffff_ffffn : length;
        const h = new Uint8Array(1 + width);
        h[0] = (major << 5) | (width === 4 ? 26 : 27);
        for (let i = 0; i < width; i++) h[width - i] = Number((n >> BigInt(8 * i)) & 0xffn);
        const bytes = Uint8Array.from([...new Array(nest).fill(0x81), ...h, ...tail]);
        // The fastest of up to 3 tries: a busy machine can stall any one call, but not every one.
        let fastest = Number.POSITIVE_INFINITY;
        for (let attempt = 0; attempt < 3 && fastest >= 50; attempt++) {
          const t0 = performance.now();
          expect(() => decodeCbor(bytes)).toThrow(ProtocolError);
          fastest = Math.min(fastest, performance.now() - t0);
        }
        slowest = Math.max(slowest, fastest);
      }),
      params,
    );
    // Allocating even the smallest claim here (64 KiB) for every run would show; 4 GiB would not finish.
    expect(slowest).toBeLessThan(50);
  });
});
