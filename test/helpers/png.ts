/**
 * A minimal PNG writer for 1-bit pictures (grayscale, bit depth 1), so a rendering test can leave
 * a picture a person can open and check by eye. Test-only; our own from the PNG spec (RFC 2083):
 * signature, IHDR, one IDAT (zlib), IEND, each chunk with its CRC-32.
 */
import { deflateSync } from "node:zlib";
import type { Bitmap } from "../../hw/display/bitmap.ts";

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** The picture scaled by `scale`, lit pixels white on black (as the OLED shows them). */
export function bitmapToPng(b: Bitmap, scale = 4): Uint8Array {
  const w = b.width * scale;
  const h = b.height * scale;
  const stride = Math.ceil(w / 8);
  const raw = Buffer.alloc((stride + 1) * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      if (b.get(Math.floor(x / scale), Math.floor(y / scale)))
        raw[y * (stride + 1) + 1 + (x >> 3)]! |= 0x80 >> (x & 7);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // grayscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}
