import { describe, expect, test } from "bun:test";
import { AssertionError, isProtocolError, type ProtocolErrorCode } from "../errors.ts";
import { type CborMap, type CborValue, decodeCbor, encodeCbor } from "./cbor.ts";
import { CBOR_MAX_BYTES, CBOR_MAX_DEPTH, CBOR_MAX_ITEMS } from "./limits.ts";

// core/ stays free of Node globals (no Buffer), tests included.
function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}
function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
function obj(entries: Record<string, CborValue>): CborMap {
  return Object.assign(Object.create(null) as CborMap, entries);
}
/** Decoding must throw a ProtocolError with exactly this code. */
function rejects(
  input: Uint8Array | string,
  code: ProtocolErrorCode,
  limits?: Parameters<typeof decodeCbor>[1],
) {
  const bytes = typeof input === "string" ? hex(input) : input;
  let thrown: unknown;
  try {
    decodeCbor(bytes, limits);
  } catch (e) {
    thrown = e;
  }
  if (!isProtocolError(thrown, code)) {
    throw new Error(`expected ${code} for ${toHex(bytes).slice(0, 80)}, got ${String(thrown)}`);
  }
}
function asserts(value: unknown, limits?: Parameters<typeof encodeCbor>[1]) {
  expect(() => encodeCbor(value as CborValue, limits)).toThrow(AssertionError);
}

describe("round trip", () => {
  const cases: [CborValue, string][] = [
    [0, "00"],
    [23, "17"],
    [24, "1818"],
    [255, "18ff"],
    [256, "190100"],
    [65535, "19ffff"],
    [65536, "1a00010000"],
    [2 ** 32 - 1, "1affffffff"],
    [2 ** 32, "1b0000000100000000"],
    [Number.MAX_SAFE_INTEGER, "1b001fffffffffffff"],
    [2n ** 53n, "1b0020000000000000"],
    [2n ** 64n - 1n, "1bffffffffffffffff"],
    [-1, "20"],
    [-24, "37"],
    [-25, "3818"],
    [-Number.MAX_SAFE_INTEGER, "3b001ffffffffffffe"],
    [-(2n ** 53n), "3b001fffffffffffff"],
    [-(2n ** 64n), "3bffffffffffffffff"],
    [new Uint8Array([1, 2, 3]), "43010203"],
    ["", "60"],
    ["\u00fc", "62c3bc"],
    ["\u{10151}", "64f0908591"],
    ["\ufeff", "63efbbbf"],
    [true, "f5"],
    [false, "f4"],
    [null, "f6"],
    [[], "80"],
    [[1, [2, 3]], "8201820203"],
    [obj({}), "a0"],
    [obj({ b: 1, a: 2, aa: 3 }), "a3616102616201626161 03"],
  ];
  for (const [value, encoding] of cases) {
    test(`${encoding}`, () => {
      expect(toHex(encodeCbor(value))).toBe(encoding.replace(/\s+/g, ""));
      expect(decodeCbor(hex(encoding))).toStrictEqual(value);
    });
  }

  test("integers use number exactly within ±(2^53-1), bigint beyond", () => {
    expect(typeof decodeCbor(hex("1b001fffffffffffff"))).toBe("number");
    expect(typeof decodeCbor(hex("1b0020000000000000"))).toBe("bigint");
    expect(typeof decodeCbor(hex("3b001ffffffffffffe"))).toBe("number");
    expect(typeof decodeCbor(hex("3b001fffffffffffff"))).toBe("bigint");
  });

  test("encoder: -0 is 0, small bigints encode like numbers", () => {
    expect(toHex(encodeCbor(-0))).toBe("00");
    expect(toHex(encodeCbor(1000n))).toBe(toHex(encodeCbor(1000)));
    expect(toHex(encodeCbor(-1000n))).toBe(toHex(encodeCbor(-1000)));
  });

  test("decoded byte strings are copies, not views of the input", () => {
    const input = hex("43010203");
    const out = decodeCbor(input) as Uint8Array;
    input[1] = 0xff;
    expect(out[0]).toBe(1);
  });

  test("large values grow the buffer and are reproducible", () => {
    const big = { data: new Uint8Array(60_000).fill(7), list: Array.from({ length: 1000 }, (_, i) => i) };
    const a = encodeCbor(big);
    const b = encodeCbor(big);
    expect(a).toStrictEqual(b);
    expect(decodeCbor(a)).toEqual(big);
    expect(toHex(encodeCbor(1))).toBe("01");
  });
});

describe("maps", () => {
  test("decode to null-prototype objects", () => {
    const m = decodeCbor(hex("a1616101")) as CborMap;
    expect(Object.getPrototypeOf(m)).toBeNull();
    expect(m.a).toBe(1);
  });

  test("__proto__ and constructor are ordinary own properties; no prototype is touched", () => {
    // A computed key: a literal `__proto__:` would set the literal's prototype instead.
    const bytes = encodeCbor(obj({ ["__proto__"]: obj({ polluted: true }), constructor: 1 }));
    expect(toHex(bytes)).toContain(toHex(new TextEncoder().encode("__proto__")));
    const m = decodeCbor(bytes) as CborMap;
    expect(Object.getPrototypeOf(m)).toBeNull();
    expect(Object.keys(m).sort()).toEqual(["__proto__", "constructor"]);
    expect(Object.getOwnPropertyDescriptor(m, "__proto__")?.value).toEqual(obj({ polluted: true }));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(toHex(encodeCbor(m))).toBe(toHex(bytes));
  });

  test("encoder sorts keys by encoded bytes: length first, then UTF-8 bytes (not UTF-16 order)", () => {
    // "\uE000a" (ee 80 80 61) sorts before "\u{10000}" (f0 90 80 80) in UTF-8, after it in UTF-16.
    const m = obj({ "\u{10000}": 1, "\uE000a": 2, z: 3, aa: 4, é: 5 });
    const enc = encodeCbor(m);
    expect(toHex(enc)).toBe("a5617a036261610462c3a90564ee8080610264f090808001");
    expect(decodeCbor(enc)).toEqual(m);
    const keys = Array.from({ length: 40 }, (_, i) => "k".repeat(i + 1)).reverse();
    const long = obj(Object.fromEntries(keys.map((k) => [k, 0])));
    expect(Object.keys(decodeCbor(encodeCbor(long)) as CborMap)).toEqual(keys.slice().reverse());
  });

  test("rejects duplicate keys", () => {
    rejects("a2616100616101", "cbor-malformed");
    rejects("a3616100616201616100", "cbor-noncanonical"); // non-adjacent duplicate is unsorted too
  });

  test("rejects keys out of canonical order", () => {
    rejects("a2616201616100", "cbor-noncanonical");
    rejects("a2626161006162 01", "cbor-noncanonical"); // "aa" before "b": longer key first
    expect(decodeCbor(hex("a2616201626161 00"))).toEqual(obj({ b: 1, aa: 0 }));
  });

  test("rejects non-text keys", () => {
    rejects("a10102", "cbor-malformed");
    rejects("a1200102", "cbor-malformed");
    rejects("a1410001", "cbor-malformed");
    rejects("a18001", "cbor-malformed");
    rejects("a1f601", "cbor-malformed");
  });
});

describe("decoder rejects", () => {
  test("indefinite lengths", () => {
    for (const h of ["5f4101ff", "7f6161ff", "9f01ff", "bf616101ff", "a17f6161ff01"])
      rejects(h, "cbor-noncanonical");
    for (const h of ["1f", "3f", "ff", "8101ff"]) rejects(h, "cbor-malformed");
  });

  test("any tag", () => {
    for (const h of [
      "c074323031332d30332d32315432303a30343a30305a",
      "c249010000000000000000",
      "d81b6161",
      "d9d9f700",
    ]) {
      rejects(h, "cbor-malformed");
    }
  });

  test("non-preferred integers and lengths", () => {
    const cases = ["1800", "1817", "190000", "1900ff", "1a00000000", "1a0000ffff", "1b0000000000000000"];
    cases.push("1b00000000ffffffff", "3817", "39001f", "5800", "5801 00", "780161", "9800", "b800");
    cases.push("5900 0100", "99000101", "a1780161 01");
    for (const h of cases) rejects(h, "cbor-noncanonical");
  });

  test("floats, undefined and other simple values", () => {
    const cases = [
      "f90000",
      "f93c00",
      "f97e00",
      "f97c00",
      "fa47c35000",
      "fb3ff199999999999a",
      "f7",
      "f0",
      "f3",
    ];
    cases.push("f8ff", "f820", "f800", "f818", "fc", "fd", "fe", "1c", "3d", "5e", "7c", "9d", "be");
    for (const h of cases) rejects(h, "cbor-malformed");
  });

  test("depth beyond CBOR_MAX_DEPTH", () => {
    const nested = (n: number, inner: string, open: string) => hex(open.repeat(n - 1) + inner);
    expect(() => decodeCbor(nested(CBOR_MAX_DEPTH, "80", "81"))).not.toThrow();
    rejects(nested(CBOR_MAX_DEPTH + 1, "80", "81"), "cbor-limit");
    expect(() => decodeCbor(nested(CBOR_MAX_DEPTH, "a0", "a16100"))).not.toThrow();
    rejects(nested(CBOR_MAX_DEPTH + 1, "a0", "a16100"), "cbor-limit");
    rejects(nested(3, "80", "81"), "cbor-limit", { maxDepth: 2 });
    // Far past the limit: a clean ProtocolError, never a stack overflow.
    rejects(new Uint8Array(CBOR_MAX_BYTES).fill(0x81), "cbor-limit");
    expect(decodeCbor(hex("01"), { maxDepth: 0 })).toBe(1);
  });

  test("more than CBOR_MAX_ITEMS in one array or map", () => {
    const arr = (n: number) => concat(hex(`99${n.toString(16).padStart(4, "0")}`), new Uint8Array(n));
    expect((decodeCbor(arr(CBOR_MAX_ITEMS)) as CborValue[]).length).toBe(CBOR_MAX_ITEMS);
    rejects(arr(CBOR_MAX_ITEMS + 1), "cbor-limit");
    const m: CborMap = obj({});
    for (let i = 0; i <= CBOR_MAX_ITEMS; i++) m[`k${i}`] = i;
    const bytes = encodeCbor(m, { maxItems: CBOR_MAX_ITEMS + 1 });
    rejects(bytes, "cbor-limit");
    expect(decodeCbor(bytes, { maxItems: CBOR_MAX_ITEMS + 1 })).toEqual(m);
  });

  test("input longer than CBOR_MAX_BYTES, checked before anything else", () => {
    // Zeros would otherwise be "trailing bytes"; 0xff would be a stray break.
    rejects(new Uint8Array(CBOR_MAX_BYTES + 1), "cbor-limit");
    rejects(new Uint8Array(CBOR_MAX_BYTES + 1).fill(0xff), "cbor-limit");
    rejects(hex("0000"), "cbor-limit", { maxBytes: 1 });
    const max = concat(hex("59ffec"), new Uint8Array(CBOR_MAX_BYTES - 3));
    expect(max.length).toBe(CBOR_MAX_BYTES);
    expect((decodeCbor(max) as Uint8Array).length).toBe(CBOR_MAX_BYTES - 3);
  });

  test("trailing bytes and empty input", () => {
    rejects("0000", "cbor-malformed");
    rejects("80f6", "cbor-malformed");
    rejects("", "cbor-malformed");
  });

  test("every truncation of a valid encoding", () => {
    const full = encodeCbor(
      obj({ a: [1, -300, 70000, 2 ** 40, 2n ** 63n], bytes: new Uint8Array(30), t: "h\u00e9llo", z: null }),
    );
    for (let n = 0; n < full.length; n++) rejects(full.subarray(0, n), "cbor-malformed");
  });

  test("invalid UTF-8 in values and keys", () => {
    for (const h of [
      "61ff",
      "62c328",
      "62c0af",
      "63eda080",
      "64f4908080",
      "61 80",
      `7820${"61".repeat(31)}ff`,
    ]) {
      rejects(h, "cbor-malformed");
    }
    rejects("a161ff00", "cbor-malformed");
  });

  test("declared lengths beyond the input, before allocating", () => {
    const heads = ["5affffffff", "5bffffffffffffffff", "7affffffff", "7b7fffffffffffffff"];
    heads.push("5a7fffffff00", "7a0001000000");
    for (const h of heads) rejects(h, "cbor-malformed");
    // Counts: over the item limit is a limit error; within it but beyond the input is malformed.
    for (const h of ["9affffffff", "9bffffffffffffffff", "bafffffffe", "bb0000000100000000"])
      rejects(h, "cbor-limit");
    rejects("990400", "cbor-malformed");
    rejects("b90200", "cbor-malformed");
    const t0 = performance.now();
    for (let i = 0; i < 20_000; i++) rejects("5affffffff", "cbor-malformed");
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  test("error messages never carry peer bytes", () => {
    const secret = encodeCbor(obj({ SECRETKEY: "SECRETVALUE" }));
    const inputs = [
      concat(secret, hex("00")),
      concat(hex("82"), secret),
      concat(hex("a2"), secret.subarray(1), hex("61")),
    ];
    for (const input of inputs) {
      try {
        decodeCbor(input);
        throw new Error("expected rejection");
      } catch (e) {
        expect(isProtocolError(e)).toBe(true);
        expect(String((e as Error).message)).not.toContain("SECRET");
      }
    }
  });
});

describe("encoder asserts outside the data model", () => {
  test("non-integers and non-model types", () => {
    class Thing {}
    const values: unknown[] = [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, -(2 ** 53), undefined];
    values.push(() => 1, Symbol("x"), new Map(), new Set(), new Date(0), new Thing(), new Uint16Array(2));
    values.push(
      new ArrayBuffer(2),
      2n ** 64n,
      -(2n ** 64n) - 1n,
      [undefined],
      obj({ a: undefined as never }),
    );
    for (const v of values) asserts(v);
  });

  test("strings that are not well-formed UTF-16", () => {
    for (const s of ["\ud800", "a\udc00", "\udc00\ud800", "x\ud83d"]) asserts(s);
    expect(toHex(encodeCbor("\ud83d\ude00"))).toBe("64f09f9880");
  });

  test("sparse arrays, symbol keys, cycles, depth and item limits", () => {
    const sparse: CborValue[] = [];
    sparse[0] = 1;
    sparse[2] = 3;
    asserts(sparse);
    asserts({ [Symbol("s")]: 1 });
    const cyclic: CborValue[] = [];
    cyclic.push(cyclic);
    asserts(cyclic);
    let deep: CborValue = [];
    for (let i = 1; i < CBOR_MAX_DEPTH; i++) deep = [deep];
    expect(() => encodeCbor(deep)).not.toThrow();
    asserts([deep]);
    asserts(new Array(CBOR_MAX_ITEMS + 1).fill(0));
    asserts(new Uint8Array(CBOR_MAX_BYTES));
    asserts([1, 2, 3], { maxItems: 2 });
  });

  test("a getter that encodes during encoding gets its own buffer", () => {
    const inner = encodeCbor("inner");
    const tricky = {
      get a() {
        return encodeCbor("nested");
      },
      b: 1,
    };
    const out = encodeCbor(tricky as unknown as CborValue);
    expect(decodeCbor(out)).toEqual(obj({ a: encodeCbor("nested"), b: 1 }));
    expect(toHex(encodeCbor("inner"))).toBe(toHex(inner));
  });
});
