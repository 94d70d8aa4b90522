import { expect, test } from "bun:test";
import { crc32c } from "./crc32c.ts";

// Bit-at-a-time reference, straight from the definition.
function crcRef(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test("standard check value", () => {
  expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
});

test("RFC 3720 B.4 iSCSI vectors", () => {
  expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
});

test("empty input", () => expect(crc32c(new Uint8Array(0))).toBe(0));

test("matches the bitwise reference at every length and alignment", () => {
  const buf = new Uint8Array(300);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 7) & 0xff;
  for (let start = 0; start < 9; start++) {
    for (let len = 0; start + len <= buf.length; len += 1 + (len >> 3)) {
      const v = buf.subarray(start, start + len);
      expect(crc32c(v)).toBe(crcRef(v));
    }
  }
});

test("incremental equals one shot", () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) ^ (i >> 3));
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).toBe(crc32c(data));
  }
});
