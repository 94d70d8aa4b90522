import { describe, expect, test } from "bun:test";
import { chunked } from "../../test/helpers/chunks.ts";
import { loadFramingSeeds } from "../../test/vectors/framing-corpus.ts";
import { isProtocolError } from "../errors.ts";
import { encodeTcpFrame, frameInPlace, TcpFrameReader } from "./tcp-frame.ts";

const msg = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i + seed) & 0xff);

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (isProtocolError(e)) return e.code;
    throw e;
  }
  return undefined;
}

describe("encodeTcpFrame", () => {
  test("u16 BE length prefix", () => {
    expect(encodeTcpFrame(msg(3))).toEqual(new Uint8Array([0, 3, 0, 1, 2]));
    const big = encodeTcpFrame(msg(65535));
    expect([big[0], big[1], big.length]).toEqual([0xff, 0xff, 65537]);
  });
  test("asserts on empty or oversized messages (our bug)", () => {
    expect(() => encodeTcpFrame(msg(0))).toThrow("size");
    expect(() => encodeTcpFrame(msg(65536))).toThrow("size");
  });
});

describe("TcpFrameReader", () => {
  const msgs = [msg(1), msg(300, 1), msg(65535, 2), msg(2, 3), msg(1000, 4)];
  const stream = new Uint8Array(msgs.flatMap((m) => [...encodeTcpFrame(m)]));

  test("frames within one chunk are zero-copy views", () => {
    const r = new TcpFrameReader();
    r.push(stream);
    const got = [...r.drain()];
    expect(got).toEqual(msgs);
    for (const m of got) expect(m.buffer).toBe(stream.buffer);
    expect(r.pendingBytes).toBe(0);
    r.end();
  });

  test("every split point of a small stream, and byte by byte", () => {
    const small = stream.subarray(0, 3 + 302 + 4);
    for (let cut = 0; cut <= small.length; cut++) {
      const r = new TcpFrameReader();
      r.push(small.subarray(0, cut));
      const got = [...r.drain()];
      r.push(small.subarray(cut));
      got.push(...r.drain());
      expect(got).toEqual([msg(1), msg(300, 1)]);
    }
    const r = new TcpFrameReader();
    const got: Uint8Array[] = [];
    for (const b of stream) {
      r.push(new Uint8Array([b]));
      got.push(...r.drain());
    }
    expect(got).toEqual(msgs);
  });

  test("zero length is malformed, and the reader stays failed", () => {
    const r = new TcpFrameReader();
    r.push(new Uint8Array([0, 1, 9, 0, 0]));
    expect(r.next()).toEqual(new Uint8Array([9]));
    expect(code(() => r.next())).toBe("frame-malformed");
    expect(code(() => r.next())).toBe("frame-malformed");
    expect(code(() => r.push(new Uint8Array([1])))).toBe("frame-malformed");
  });

  test("a lower maxMessage is enforced as soon as the length arrives", () => {
    const r = new TcpFrameReader({ maxMessage: 100 });
    r.push(new Uint8Array([0, 100, ...msg(100)]));
    expect(r.next()).toEqual(msg(100));
    r.push(new Uint8Array([0, 101]));
    expect(code(() => r.next())).toBe("frame-too-large");
    expect(() => new TcpFrameReader({ maxMessage: 65536 })).toThrow();
    expect(() => new TcpFrameReader({ maxMessage: 0 })).toThrow();
  });

  test("end() reports a partial frame", () => {
    const r = new TcpFrameReader();
    r.push(new Uint8Array([0, 5, 1, 2]));
    expect(r.next()).toBeUndefined();
    expect(code(() => r.end())).toBe("frame-truncated");
    const header = new TcpFrameReader();
    header.push(new Uint8Array([0]));
    expect(header.next()).toBeUndefined();
    expect(code(() => header.end())).toBe("frame-truncated");
  });

  test("many tiny chunks before one frame completes", () => {
    const r = new TcpFrameReader();
    const m = msg(5000, 9);
    const enc = encodeTcpFrame(m);
    for (let i = 0; i < enc.length; i++) {
      r.push(enc.subarray(i, i + 1));
      if (i < enc.length - 1) expect(r.next()).toBeUndefined();
    }
    expect(r.next()).toEqual(m);
  });
});

describe("frameInPlace", () => {
  test("uses the two bytes before the message when its buffer has them, same bytes as encodeTcpFrame", () => {
    const backing = new Uint8Array(64 + 5);
    const msg = backing.subarray(64);
    msg.set([1, 2, 3, 4, 5]);
    const framed = frameInPlace(msg);
    expect(framed.buffer).toBe(backing.buffer);
    expect([...framed]).toEqual([...encodeTcpFrame(msg)]);
  });

  test("copies when there is no room before the message", () => {
    const msg = Uint8Array.of(9, 8, 7);
    const framed = frameInPlace(msg);
    expect(framed.buffer).not.toBe(msg.buffer);
    expect([...framed]).toEqual([0, 3, 9, 8, 7]);
  });
});

describe("seeds in test/vectors/framing", () => {
  for (const seed of loadFramingSeeds().filter((s) => s.target === "tcp")) {
    test(`${seed.file}: ${seed.frames} frames, then ${seed.expect}, however the bytes are split`, () => {
      for (const sizes of [[seed.bytes.length], [1], [3, 1000]]) {
        const r = new TcpFrameReader();
        const frames: Uint8Array[] = [];
        const got = code(() => {
          for (const chunk of chunked(seed.bytes, sizes)) {
            r.push(chunk);
            for (const f of r.drain()) frames.push(f); // keep frames before a throw
          }
        });
        expect(frames.length).toBe(seed.frames);
        if (seed.expect === "ok" || seed.expect === "incomplete") {
          expect(got).toBeUndefined();
          expect(code(() => r.end())).toBe(seed.expect === "ok" ? undefined : "frame-truncated");
        } else {
          expect(got).toBe(seed.expect);
        }
      }
    });
  }
});
