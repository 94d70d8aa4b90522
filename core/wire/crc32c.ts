/**
 * CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, init and final XOR 0xFFFFFFFF), the
 * integrity check of a serial frame (DESIGN.md "The link, layer by layer"; noise-transport.md
 * §7.7). It catches line noise only; it is no defence against an attacker (AEAD is).
 *
 * Slicing-by-8: eight 256-entry tables let one step consume 8 bytes with independent lookups,
 * which is several times faster in JS than the byte-at-a-time loop. Must never allocate per call.
 */

const POLY = 0x82f63b78;

/** TABLE[t * 256 + b]: CRC of byte b followed by t zero bytes. */
const TABLE = new Uint32Array(8 * 256);
for (let b = 0; b < 256; b++) {
  let c = b;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  TABLE[b] = c >>> 0;
}
for (let t = 1; t < 8; t++) {
  for (let b = 0; b < 256; b++) {
    const prev = TABLE[(t - 1) * 256 + b]!;
    TABLE[t * 256 + b] = (prev >>> 8) ^ TABLE[prev & 0xff]!;
  }
}

/**
 * CRC-32C of data. To checksum data in pieces pass the previous result as `crc`:
 * crc32c(b, crc32c(a)) === crc32c(a ‖ b). Returns an unsigned 32-bit number.
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  const T = TABLE;
  const n = data.length;
  let c = ~crc;
  let i = 0;
  for (const end = n - 7; i < end; i += 8) {
    const lo = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    c =
      T[1792 + (lo & 0xff)]! ^
      T[1536 + ((lo >>> 8) & 0xff)]! ^
      T[1280 + ((lo >>> 16) & 0xff)]! ^
      T[1024 + (lo >>> 24)]! ^
      T[768 + data[i + 4]!]! ^
      T[512 + data[i + 5]!]! ^
      T[256 + data[i + 6]!]! ^
      T[data[i + 7]!]!;
  }
  for (; i < n; i++) c = T[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
