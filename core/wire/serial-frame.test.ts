import { describe, expect, test } from "bun:test";
import { loadFramingSeeds } from "../../test/vectors/framing-corpus.ts";
import { isProtocolError } from "../errors.ts";
import { cobsEncode } from "./cobs.ts";
import { crc32c } from "./crc32c.ts";
import { SERIAL_MAX_BODY } from "./limits.ts";
import {
  decodeSerialFrame,
  encodeSerialFrame,
  SERIAL_MAX_ENCODED,
  type SerialFrame,
  SerialFrameReader,
  SerialFrameType,
} from "./serial-frame.ts";

/** Builds an encoded frame from raw fields, bypassing the encoder's asserts (bad types, sizes). */
function rawFrame(type: number, epoch: number, counter: bigint, body: Uint8Array, crcXor = 0): Uint8Array {
  const raw = new Uint8Array(10 + body.length + 4);
  const dv = new DataView(raw.buffer);
  raw[0] = type;
  raw[1] = epoch;
  dv.setBigUint64(2, counter);
  raw.set(body, 10);
  dv.setUint32(raw.length - 4, (crc32c(raw.subarray(0, raw.length - 4)) ^ crcXor) >>> 0);
  const enc = cobsEncode(raw);
  const out = new Uint8Array(enc.length + 1);
  out.set(enc);
  return out;
}

const body = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const frame = (counter: bigint, n = 40): SerialFrame => ({
  type: SerialFrameType.TRANSPORT,
  epoch: 7,
  counter,
  body: body(n, Number(counter & 0xffn)),
});

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (isProtocolError(e)) return e.code;
    throw e;
  }
  return undefined;
}

describe("encodeSerialFrame / decodeSerialFrame", () => {
  test("round trip, layout and delimiter", () => {
    const f: SerialFrame = {
      type: SerialFrameType.HANDSHAKE,
      epoch: 255,
      counter: 0x0102030405060708n,
      body: body(5),
    };
    const enc = encodeSerialFrame(f);
    expect(enc).toEqual(rawFrame(1, 255, 0x0102030405060708n, body(5)));
    expect(enc[enc.length - 1]).toBe(0);
    expect(enc.subarray(0, -1).includes(0)).toBe(false);
    expect(decodeSerialFrame(enc)).toEqual(f);
    expect(decodeSerialFrame(enc.subarray(0, -1))).toEqual(f);
  });

  test("leading delimiter option", () => {
    const enc = encodeSerialFrame(frame(3n), { leadingDelimiter: true });
    expect(enc[0]).toBe(0);
    expect(enc.subarray(1)).toEqual(encodeSerialFrame(frame(3n)));
    expect(decodeSerialFrame(enc)).toEqual(frame(3n));
  });

  test("counter extremes", () => {
    for (const c of [0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n]) {
      expect(decodeSerialFrame(encodeSerialFrame(frame(c))).counter).toBe(c);
    }
  });

  test("largest body round-trips and fits SERIAL_MAX_ENCODED", () => {
    const f = frame(9n, SERIAL_MAX_BODY);
    f.body.fill(0x5a); // no zero: the COBS worst case
    const enc = encodeSerialFrame(f, { leadingDelimiter: true });
    expect(enc.length).toBe(SERIAL_MAX_ENCODED + 2);
    expect(decodeSerialFrame(enc)).toEqual(f);
  });

  test("a RESET frame round-trips (type 3: the session-over notice)", () => {
    const f = { type: SerialFrameType.RESET, epoch: 0, counter: 0x0123456789abcdefn, body: Uint8Array.of(0) };
    expect(decodeSerialFrame(encodeSerialFrame(f, { leadingDelimiter: true }))).toEqual(f);
  });

  test("encoder asserts on our own bad input", () => {
    expect(() => encodeSerialFrame(frame(1n, SERIAL_MAX_BODY + 1))).toThrow("serial body size");
    expect(() => encodeSerialFrame(frame(1n, 0))).toThrow("serial body size");
    expect(() => encodeSerialFrame({ ...frame(1n), counter: 2n ** 64n })).toThrow("u64");
    expect(() => encodeSerialFrame({ ...frame(1n), counter: -1n })).toThrow("u64");
    expect(() => encodeSerialFrame({ ...frame(1n), epoch: 256 })).toThrow("u8");
    expect(() => encodeSerialFrame({ ...frame(1n), type: 4 as SerialFrameType })).toThrow("type");
  });

  test("decode errors carry fixed codes", () => {
    expect(code(() => decodeSerialFrame(rawFrame(2, 0, 1n, body(SERIAL_MAX_BODY + 1))))).toBe(
      "frame-too-large",
    );
    expect(code(() => decodeSerialFrame(rawFrame(2, 0, 1n, body(10), 1)))).toBe("frame-crc");
    expect(code(() => decodeSerialFrame(rawFrame(4, 0, 1n, body(10))))).toBe("frame-malformed");
    expect(code(() => decodeSerialFrame(rawFrame(0, 0, 1n, body(10))))).toBe("frame-malformed");
    expect(code(() => decodeSerialFrame(rawFrame(2, 0, 1n, body(0))))).toBe("frame-malformed");
    expect(code(() => decodeSerialFrame(cobsEncode(body(13))))).toBe("frame-truncated");
    expect(code(() => decodeSerialFrame(new Uint8Array([0])))).toBe("frame-truncated");
    expect(code(() => decodeSerialFrame(new Uint8Array(SERIAL_MAX_ENCODED + 1).fill(1)))).toBe(
      "frame-too-large",
    );
    const enc = encodeSerialFrame(frame(5n));
    expect(code(() => decodeSerialFrame(enc.subarray(0, 20)))).toBe("frame-truncated");
    const two = new Uint8Array([...enc, ...enc]);
    expect(code(() => decodeSerialFrame(two))).toBe("frame-malformed");
  });

  test("error messages never carry frame bytes", () => {
    try {
      decodeSerialFrame(rawFrame(2, 0x41, 0x4141414141414141n, new Uint8Array(20).fill(0x41), 1));
    } catch (e) {
      expect(String(e)).not.toContain("A");
      expect(String(e)).not.toContain("41");
    }
  });
});

describe("SerialFrameReader", () => {
  const frames = [frame(1n), frame(2n, 300), frame(3n, 1), frame(4n, 1000)];
  const stream = new Uint8Array(frames.flatMap((f) => [...encodeSerialFrame(f)]));

  test("one chunk, and byte by byte", () => {
    const a = new SerialFrameReader();
    a.push(stream);
    expect([...a.drain()]).toEqual(frames);
    const b = new SerialFrameReader();
    const got: SerialFrame[] = [];
    for (const byte of stream) {
      b.push(new Uint8Array([byte]));
      got.push(...b.drain());
    }
    expect(got).toEqual(frames);
    expect(b.framesOk).toBe(4);
    expect(b.framesDropped).toBe(0);
    expect(b.next()).toBeUndefined();
  });

  test("empty segments (repeated delimiters) are neither frames nor drops", () => {
    const r = new SerialFrameReader();
    r.push(new Uint8Array(10));
    r.push(encodeSerialFrame(frame(1n), { leadingDelimiter: true }));
    expect([...r.drain()]).toEqual([frame(1n)]);
    expect(r.framesDropped).toBe(0);
    expect(r.bytesDiscarded).toBe(0);
  });

  test("drops garbage and a corrupted frame, then resyncs", () => {
    const r = new SerialFrameReader();
    const bad = encodeSerialFrame(frame(2n));
    bad[5]! ^= 0x10;
    r.push(new Uint8Array([1, 2, 3, 0]));
    r.push(encodeSerialFrame(frame(1n)));
    r.push(bad);
    r.push(encodeSerialFrame(frame(3n)));
    expect([...r.drain()]).toEqual([frame(1n), frame(3n)]);
    expect(r.framesOk).toBe(2);
    expect(r.framesDropped).toBe(2);
    expect(r.bytesDiscarded).toBe(3 + bad.length - 1);
  });

  test("a non-zero flood is capped and discarded up to the next delimiter", () => {
    const r = new SerialFrameReader();
    const flood = new Uint8Array(4096).fill(0x55);
    for (let i = 0; i < 20; i++) {
      r.push(flood);
      expect(r.pendingBytes).toBeLessThanOrEqual(SERIAL_MAX_ENCODED);
    }
    r.push(encodeSerialFrame(frame(8n)));
    expect(r.next()).toBeUndefined(); // the frame was glued to the flood, so it is lost
    expect(r.framesDropped).toBe(1);
    expect(r.bytesDiscarded).toBe(20 * 4096 + encodeSerialFrame(frame(8n)).length - 1);
    r.push(encodeSerialFrame(frame(9n)));
    expect([...r.drain()]).toEqual([frame(9n)]);
    expect(r.pendingBytes).toBe(0);
  });

  test("a leading delimiter saves a frame that follows garbage", () => {
    const r = new SerialFrameReader();
    r.push(new Uint8Array(100).fill(0x77));
    r.push(encodeSerialFrame(frame(4n), { leadingDelimiter: true }));
    expect([...r.drain()]).toEqual([frame(4n)]);
    expect(r.framesDropped).toBe(1);
  });

  test("a frame of exactly the cap is accepted when split across pushes", () => {
    const f = frame(11n, SERIAL_MAX_BODY);
    f.body.fill(0x33);
    const enc = encodeSerialFrame(f);
    const r = new SerialFrameReader();
    r.push(enc.subarray(0, 5000));
    r.push(enc.subarray(5000, SERIAL_MAX_ENCODED));
    expect(r.pendingBytes).toBe(SERIAL_MAX_ENCODED);
    r.push(enc.subarray(SERIAL_MAX_ENCODED));
    expect([...r.drain()]).toEqual([f]);
  });
});

describe("seeds in test/vectors/framing", () => {
  const seeds = loadFramingSeeds();
  test("the corpus has its seeds", () => expect(seeds.length).toBeGreaterThanOrEqual(15));
  for (const seed of seeds.filter((s) => s.target === "serial")) {
    test(`${seed.file}: ${seed.expect}, alone and through the reader`, () => {
      let decoded: SerialFrame | undefined;
      const got = code(() => {
        decoded = decodeSerialFrame(seed.bytes);
      });
      expect(got ?? "ok").toBe(seed.expect);
      const r = new SerialFrameReader();
      r.push(seed.bytes);
      r.push(new Uint8Array([0]));
      expect(r.framesOk).toBe(seed.expect === "ok" ? 1 : 0);
      if (seed.expect === "ok") expect(r.next()).toEqual(decoded!);
    });
  }
});
