/**
 * The GPIO v2 uAPI encoding against the kernel's own values. The expected numbers come from a C
 * program compiled against linux-libc-dev 6.1's <linux/gpio.h> (printf of the macros, sizeof,
 * offsetof, and a byte dump of a filled struct), run on x86-64 while writing this module.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  decodeChipInfo,
  decodeLineEvents,
  decodeLineInfo,
  decodeLineRequestFd,
  encodeChipInfo,
  encodeLineEvent,
  encodeLineInfoQuery,
  encodeLineRequest,
  GPIO_GET_CHIPINFO_IOCTL,
  GPIO_V2_GET_LINE_IOCTL,
  GPIO_V2_GET_LINEINFO_IOCTL,
  GpioDecodeError,
  ior,
  iowr,
  LineFlag,
  SIZEOF,
} from "./gpio-uapi.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);

describe("ioctl numbers", () => {
  test("match <linux/gpio.h>", () => {
    expect(GPIO_GET_CHIPINFO_IOCTL).toBe(0x8044b401);
    expect(GPIO_V2_GET_LINEINFO_IOCTL).toBe(0xc100b405);
    expect(GPIO_V2_GET_LINE_IOCTL).toBe(0xc250b407);
    // Two more from the same header, to check the encoder beyond the three we use.
    expect(iowr(0xb4, 0x0d, SIZEOF.lineConfig)).toBe(0xc110b40d); // GPIO_V2_LINE_SET_CONFIG_IOCTL
    expect(iowr(0xb4, 0x0e, 16)).toBe(0xc010b40e); // GPIO_V2_LINE_GET_VALUES_IOCTL
  });
  test("sizes outside 14 bits are refused", () => {
    expect(() => ior(0xb4, 1, 1 << 14)).toThrow(RangeError);
  });
});

describe("struct layouts", () => {
  test("line request bytes equal the C struct filled the same way", () => {
    const buf = encodeLineRequest({
      offsets: [17],
      consumer: "qubes-air",
      flags: LineFlag.INPUT | LineFlag.EDGE_RISING | LineFlag.EDGE_FALLING | LineFlag.BIAS_PULL_UP,
      debounceUs: 10000,
      eventBufferSize: 64,
    });
    const nonzero =
      "0:17,256:113,257:117,258:98,259:101,260:115,261:45,262:97,263:105,264:114,288:52,289:1,296:1,320:3,328:16,329:39,336:1,560:1,564:64";
    const ours = [...buf].flatMap((b, i) => (b ? [`${i}:${b}`] : [])).join(",");
    expect(buf.length).toBe(592);
    expect(ours).toBe(nonzero);
  });

  test("line request without debounce has no attributes; bad input is refused", () => {
    const buf = encodeLineRequest({ offsets: [1, 2], consumer: "x", flags: LineFlag.INPUT });
    expect(buf[296]).toBe(0);
    expect(buf[560]).toBe(2);
    expect(() => encodeLineRequest({ offsets: [], consumer: "x", flags: 0n })).toThrow(RangeError);
    expect(() => encodeLineRequest({ offsets: [1], consumer: "c".repeat(32), flags: 0n })).toThrow(
      RangeError,
    );
    expect(() => encodeLineRequest({ offsets: [-1], consumer: "x", flags: 0n })).toThrow(RangeError);
  });

  test("the fd is read from offset 588", () => {
    const buf = new Uint8Array(592);
    new DataView(buf.buffer).setInt32(588, 9, true);
    expect(decodeLineRequestFd(buf)).toBe(9);
  });

  test("chip info round-trips and decodes at the C offsets", () => {
    const info = { name: "gpiochip0", label: "pinctrl-bcm2711", lines: 58 };
    const buf = encodeChipInfo(info);
    expect(buf.length).toBe(68);
    expect(buf[32]).toBe("p".charCodeAt(0));
    expect(buf[64]).toBe(58);
    expect(decodeChipInfo(buf)).toEqual(info);
    expect(() => decodeChipInfo(new Uint8Array(67))).toThrow(GpioDecodeError);
  });

  test("line info query and decode (offset 64, num_attrs 68, flags 72, attrs 80)", () => {
    expect(new DataView(encodeLineInfoQuery(17).buffer).getUint32(64, true)).toBe(17);
    const buf = new Uint8Array(256);
    buf.set(new TextEncoder().encode("GPIO17"), 0);
    buf.set(new TextEncoder().encode("qubes-air"), 32);
    const dv = new DataView(buf.buffer);
    dv.setUint32(64, 17, true);
    dv.setUint32(68, 1, true);
    dv.setBigUint64(72, LineFlag.USED | LineFlag.INPUT, true);
    dv.setUint32(80, 3, true);
    dv.setUint32(88, 10000, true);
    expect(decodeLineInfo(buf)).toEqual({
      name: "GPIO17",
      consumer: "qubes-air",
      offset: 17,
      flags: LineFlag.USED | LineFlag.INPUT,
      debounceUs: 10000,
    });
    dv.setUint32(68, 11, true);
    expect(() => decodeLineInfo(buf)).toThrow(GpioDecodeError);
  });

  test("a line event equals the C struct byte for byte", () => {
    const hex =
      "080706050403020102000000110000000300000002000000000000000000000000000000000000000000000000000000";
    const bytes = encodeLineEvent({
      timestampNs: 0x0102030405060708n,
      edge: "falling",
      offset: 17,
      seqno: 3,
      lineSeqno: 2,
    });
    expect(Buffer.from(bytes).toString("hex")).toBe(hex);
    expect(decodeLineEvents(bytes)).toEqual([
      { timestampNs: 0x0102030405060708n, edge: "falling", offset: 17, seqno: 3, lineSeqno: 2 },
    ]);
  });
});

describe("decodeLineEvents on untrusted bytes (fuzz)", () => {
  const event = fc.record({
    timestampNs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    edge: fc.constantFrom("rising" as const, "falling" as const),
    offset: fc.nat({ max: 0xffffffff }),
    seqno: fc.nat({ max: 0xffffffff }),
    lineSeqno: fc.nat({ max: 0xffffffff }),
  });

  test("arbitrary bytes give events or a GpioDecodeError, never anything else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 * 6 + 5 }), (bytes) => {
        try {
          const events = decodeLineEvents(bytes);
          expect(events.length).toBe(bytes.length / 48);
        } catch (e) {
          if (!(e instanceof GpioDecodeError)) throw e;
          const wholeIds = bytes.length % 48 === 0;
          if (wholeIds) {
            // Then it must be an unknown id somewhere.
            const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
            let bad = false;
            for (let at = 0; at < bytes.length; at += 48)
              bad ||= ![1, 2].includes(dv.getUint32(at + 8, true));
            expect(bad).toBe(true);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  test("encode/decode round-trips any sequence of events, with any padding", () => {
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 8 }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        (evs, pad) => {
          const bytes = new Uint8Array(evs.length * 48);
          evs.forEach((e, i) => {
            bytes.set(encodeLineEvent(e), i * 48);
            bytes.set(pad, i * 48 + 24);
          });
          expect(decodeLineEvents(bytes)).toEqual(evs);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("a truncated buffer is refused", () => {
    const one = encodeLineEvent({ timestampNs: 1n, edge: "rising", offset: 0, seqno: 1, lineSeqno: 1 });
    for (const n of [1, 24, 47]) expect(() => decodeLineEvents(one.subarray(0, n))).toThrow(GpioDecodeError);
  });
});
