import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  decodeHeader,
  encodeExitFrame,
  encodeFrame,
  encodeFrames,
  encodeHeader,
  FRAME_MAX_DATA,
  type Frame,
  FrameReader,
  HEADER_SIZE,
  V1WireError,
} from "./v1-wire.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function code(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof V1WireError) return e.reason;
    throw e;
  }
}

describe("v1 header", () => {
  test("layout: u32 LE len = offset of the final NUL, a 0 byte, NUL-terminated args", () => {
    const h = encodeHeader([enc("-s"), enc("--armor")]);
    expect(h.length).toBe(HEADER_SIZE);
    expect(new DataView(h.buffer).getUint32(0, true)).toBe(11);
    expect([...h.subarray(4, 17)]).toEqual([0, 45, 115, 0, 45, 45, 97, 114, 109, 111, 114, 0, 0]);
    expect(decodeHeader(h).map(dec)).toEqual(["-s", "--armor"]);
  });

  test("no arguments: len 0", () => {
    const h = encodeHeader([]);
    expect(new DataView(h.buffer).getUint32(0, true)).toBe(0);
    expect(decodeHeader(h)).toEqual([]);
  });

  test("empty arguments survive", () => {
    expect(decodeHeader(encodeHeader([enc(""), enc("x"), enc("")])).map(dec)).toEqual(["", "x", ""]);
  });

  test("faults", () => {
    expect(code(() => decodeHeader(new Uint8Array(1027)))).toBe("header-short");
    const h = encodeHeader([enc("-k")]);
    const long = h.slice();
    new DataView(long.buffer).setUint32(0, 1024, true);
    expect(code(() => decodeHeader(long))).toBe("header-too-long");
    const unterminated = h.slice();
    unterminated[4 + 3] = 1;
    expect(code(() => decodeHeader(unterminated))).toBe("header-not-terminated");
    const prefixed = h.slice();
    prefixed[4] = 0x41;
    expect(code(() => decodeHeader(prefixed))).toBe("header-malformed");
  });

  test("the largest command line fits exactly", () => {
    // As qubes-gpg-client: one argument of 1022 bytes gives len 1023, the last allowed.
    const h = encodeHeader([enc("x".repeat(1022))]);
    expect(new DataView(h.buffer).getUint32(0, true)).toBe(1023);
    expect(decodeHeader(h)[0]!.length).toBe(1022);
    expect(() => encodeHeader([enc("x".repeat(1023))])).toThrow(RangeError);
  });

  test("fuzz: any 1028 bytes decode or fail with a V1WireError", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: HEADER_SIZE, maxLength: HEADER_SIZE }),
        fc.nat(1100),
        (b, len) => {
          new DataView(b.buffer).setUint32(0, len, true);
          const c = code(() => decodeHeader(b));
          if (c === null) expect(len).toBeLessThan(1024);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("fuzz: args without NUL round-trip", () => {
    const arg = fc.uint8Array({ maxLength: 40 }).map((a) => a.map((x) => x || 1));
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 20 }), (args) => {
        const h = encodeHeader(args);
        expect(decodeHeader(h)).toEqual(args);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("v1 frames", () => {
  test("layout: i32 fd, u32 len, data; EOF; exit -(status+1)", () => {
    expect([...encodeFrame(2, enc("hi"))]).toEqual([2, 0, 0, 0, 2, 0, 0, 0, 104, 105]);
    expect([...encodeFrame(0, new Uint8Array(0))]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...encodeExitFrame(0)]).toEqual([255, 255, 255, 255, 0, 0, 0, 0]);
    expect(new DataView(encodeExitFrame(2).buffer).getInt32(0, true)).toBe(-3);
  });

  test("encodeFrames splits at 4096", () => {
    const r = new FrameReader(1, false);
    r.push(encodeFrames(0, new Uint8Array(10000)));
    const sizes: number[] = [];
    for (let f = r.next(); f; f = r.next()) if (f.kind === "data") sizes.push(f.data.length);
    expect(sizes).toEqual([4096, 4096, 1808]);
  });

  test("faults", () => {
    const big = new Uint8Array(8);
    new DataView(big.buffer).setUint32(4, FRAME_MAX_DATA + 1, true);
    expect(code(() => pushAll(new FrameReader(2, false), big))).toBe("frame-too-large");
    expect(code(() => pushAll(new FrameReader(2, false), encodeFrame(2, enc("x"))))).toBe("frame-bad-fd");
    expect(code(() => pushAll(new FrameReader(2, false), encodeExitFrame(0)))).toBe("frame-bad-fd");
    const badExit = encodeExitFrame(0);
    new DataView(badExit.buffer).setUint32(4, 1, true);
    expect(code(() => pushAll(new FrameReader(2, true), badExit))).toBe("frame-bad-fd");
    const r = new FrameReader(1, false);
    r.push(encodeFrame(0, enc("hello")).slice(0, 10));
    expect(r.next()).toBeNull();
    expect(code(() => r.end())).toBe("frame-truncated");
  });

  test("fuzz: frames survive any split of the stream", () => {
    const frame = fc.record({ fd: fc.nat(3), data: fc.uint8Array({ maxLength: 5000 }) });
    fc.assert(
      fc.property(
        fc.array(frame, { maxLength: 10 }),
        fc.array(fc.nat(9000), { maxLength: 10 }),
        (frames, cuts) => {
          const stream = concat(frames.map((f) => encodeFrames(f.fd, f.data)));
          const r = new FrameReader(4, true);
          const out: Frame[] = [];
          let off = 0;
          for (const cut of [
            ...cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b),
            stream.length,
          ]) {
            if (cut < off) continue;
            r.push(stream.slice(off, cut));
            off = cut;
            for (let f = r.next(); f; f = r.next()) out.push(f);
          }
          r.end();
          const got = new Map<number, number[]>();
          for (const f of out) if (f.kind === "data") got.set(f.fd, [...(got.get(f.fd) ?? []), ...f.data]);
          const want = new Map<number, number[]>();
          for (const f of frames) if (f.data.length) want.set(f.fd, [...(want.get(f.fd) ?? []), ...f.data]);
          expect(got).toEqual(want);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("fuzz: arbitrary bytes give frames or a V1WireError, never more than they hold", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(16), fc.boolean(), (bytes, n, exit) => {
        const r = new FrameReader(n, exit);
        let total = 0;
        code(() => {
          r.push(bytes);
          for (let f = r.next(); f; f = r.next()) {
            if (f.kind === "data") total += f.data.length;
            if (f.kind !== "exit") expect(f.fd).toBeLessThan(n);
          }
        });
        expect(total).toBeLessThanOrEqual(bytes.length);
      }),
      { numRuns: RUNS },
    );
  });
});

function pushAll(r: FrameReader, b: Uint8Array): void {
  r.push(b);
  while (r.next()) {}
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
