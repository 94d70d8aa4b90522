import { describe, expect, test } from "bun:test";
import { isProtocolError } from "../errors.ts";
import { cobsDecode, cobsDecodeInto, cobsEncode, cobsEncodeInto, cobsMaxEncodedLength } from "./cobs.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
const range = (from: number, to: number) => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

// Examples from Cheshire & Baker and the Wikipedia COBS article (tight variant).
const vectors: [string, Uint8Array, Uint8Array][] = [
  ["empty", hex(""), hex("01")],
  ["one zero", hex("00"), hex("0101")],
  ["two zeros", hex("0000"), hex("010101")],
  ["zero data zero", hex("001100"), hex("01021101")],
  ["zero inside", hex("11220033"), hex("0311220233")],
  ["no zero", hex("11223344"), hex("0511223344")],
  ["trailing zeros", hex("11000000"), hex("0211010101")],
  ["254 non-zero", range(1, 254), cat(hex("ff"), range(1, 254))],
  ["zero then 254", range(0, 254), cat(hex("01ff"), range(1, 254))],
  ["255 non-zero", range(1, 255), cat(hex("ff"), range(1, 254), hex("02ff"))],
  ["254 then zero", cat(range(2, 255), hex("00")), cat(hex("ff"), range(2, 255), hex("0101"))],
  ["253, zero, one", cat(range(3, 255), hex("0001")), cat(hex("fe"), range(3, 255), hex("0201"))],
];

describe("cobs", () => {
  for (const [name, raw, enc] of vectors) {
    test(`vector: ${name}`, () => {
      expect(cobsEncode(raw)).toEqual(enc);
      expect(cobsDecode(enc, 1000)).toEqual(raw);
      expect(enc.length).toBeLessThanOrEqual(cobsMaxEncodedLength(raw.length));
    });
  }

  test("worst case is exact: all non-zero input of every length up to 1100", () => {
    const dst = new Uint8Array(cobsMaxEncodedLength(1100));
    for (let n = 0; n <= 1100; n++) {
      const src = new Uint8Array(n).fill(0x5a);
      expect(cobsEncodeInto(src, dst)).toBe(cobsMaxEncodedLength(n));
    }
    expect(cobsMaxEncodedLength(0)).toBe(1);
    expect(cobsMaxEncodedLength(254)).toBe(255);
    expect(cobsMaxEncodedLength(255)).toBe(257);
  });

  test("encodes at an offset and asserts on a short buffer", () => {
    const dst = new Uint8Array(10).fill(0xee);
    expect(cobsEncodeInto(hex("1100"), dst, 3)).toBe(3);
    expect(dst).toEqual(hex("eeeeee021101eeeeeeee"));
    expect(() => cobsEncodeInto(range(1, 20), new Uint8Array(20))).toThrow("COBS output too small");
  });

  test("accepts the original paper's trailing 0x01 after a full block", () => {
    expect(cobsDecode(cat(hex("ff"), range(1, 254), hex("01")), 1000)).toEqual(range(1, 254));
  });

  const rejects = (enc: Uint8Array, code: string, max = 1000) => {
    let err: unknown;
    try {
      cobsDecode(enc, max);
    } catch (e) {
      err = e;
    }
    expect(isProtocolError(err)).toBe(true);
    expect((err as { code: string }).code).toBe(code);
  };

  test("rejects a zero byte inside", () => rejects(hex("03110022"), "frame-malformed"));
  test("rejects a leading zero", () => rejects(hex("000211"), "frame-malformed"));
  test("rejects a code running past the end", () => rejects(hex("051122"), "frame-truncated"));
  test("rejects empty input", () => rejects(hex(""), "frame-truncated"));
  test("rejects output over the limit", () => {
    rejects(hex("0511223344"), "frame-too-large", 3);
    rejects(hex("021102"), "frame-too-large", 1); // the implied zero alone crosses the limit
    expect(cobsDecode(hex("0511223344"), 4)).toEqual(hex("11223344"));
  });

  test("checks the limit before writing", () => {
    const dst = new Uint8Array(8).fill(0xee);
    expect(() => cobsDecodeInto(hex("0911223344556677"), dst, 4)).toThrow();
    expect(dst).toEqual(new Uint8Array(8).fill(0xee));
    const small = new Uint8Array(2);
    expect(() => cobsDecodeInto(hex("0411223344"), small)).toThrow("frame-too-large");
  });
});
