/**
 * The data side of the QR encoder (images/qr.ts): byte-mode segment, padding, the block structure
 * of versions 1-10 and Reed-Solomon error correction over GF(256), interleaved as the spec lays
 * codewords out. Pure.
 */

export type EcLevel = "L" | "M" | "Q" | "H";

/** Per version 1-10: total codewords, then per level [ec codewords per block, blocks of group 1, data cw, blocks of group 2]. */
const TABLE: readonly [number, Record<EcLevel, readonly [number, number, number, number]>][] = [
  [26, { L: [7, 1, 19, 0], M: [10, 1, 16, 0], Q: [13, 1, 13, 0], H: [17, 1, 9, 0] }],
  [44, { L: [10, 1, 34, 0], M: [16, 1, 28, 0], Q: [22, 1, 22, 0], H: [28, 1, 16, 0] }],
  [70, { L: [15, 1, 55, 0], M: [26, 1, 44, 0], Q: [18, 2, 17, 0], H: [22, 2, 13, 0] }],
  [100, { L: [20, 1, 80, 0], M: [18, 2, 32, 0], Q: [26, 2, 24, 0], H: [16, 4, 9, 0] }],
  [134, { L: [26, 1, 108, 0], M: [24, 2, 43, 0], Q: [18, 2, 15, 2], H: [22, 2, 11, 2] }],
  [172, { L: [18, 2, 68, 0], M: [16, 4, 27, 0], Q: [24, 4, 19, 0], H: [28, 4, 15, 0] }],
  [196, { L: [20, 2, 78, 0], M: [18, 4, 31, 0], Q: [18, 2, 14, 4], H: [26, 4, 13, 1] }],
  [242, { L: [24, 2, 97, 0], M: [22, 2, 38, 2], Q: [22, 4, 18, 2], H: [26, 4, 14, 2] }],
  [292, { L: [30, 2, 116, 0], M: [22, 3, 36, 2], Q: [20, 4, 16, 4], H: [24, 4, 12, 4] }],
  [346, { L: [18, 2, 68, 2], M: [26, 4, 43, 1], Q: [24, 6, 19, 2], H: [28, 6, 15, 2] }],
];
export function dataCapacity(version: number, ec: EcLevel): number {
  const [, levels] = TABLE[version - 1]!;
  const [, b1, d1, b2] = levels[ec];
  return b1 * d1 + b2 * (d1 + 1);
}

// GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1.
function gfMul(a: number, b: number): number {
  let r = 0;
  for (let i = 7; i >= 0; i--) {
    r = (r << 1) ^ ((r >>> 7) * 0x11d);
    r ^= ((b >>> i) & 1) * a;
  }
  return r & 0xff;
}

function rsDivisor(degree: number): number[] {
  const result = new Array<number>(degree).fill(0);
  result[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < degree; j++) {
      result[j] = gfMul(result[j]!, root);
      if (j + 1 < degree) result[j] = result[j]! ^ result[j + 1]!;
    }
    root = gfMul(root, 2);
  }
  return result;
}

function rsRemainder(data: readonly number[], divisor: readonly number[]): number[] {
  const result = new Array<number>(divisor.length).fill(0);
  for (const b of data) {
    const factor = b ^ result.shift()!;
    result.push(0);
    divisor.forEach((d, i) => {
      result[i] = result[i]! ^ gfMul(d, factor);
    });
  }
  return result;
}

/** Data codewords (mode, count, bytes, terminator, padding), then blocks with EC, interleaved. */
export function codewords(data: Uint8Array, version: number, ec: EcLevel): number[] {
  const bits: number[] = [];
  const put = (value: number, n: number) => {
    for (let i = n - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  put(0b0100, 4);
  put(data.length, version < 10 ? 8 : 16);
  for (const b of data) put(b, 8);
  const capacityBits = dataCapacity(version, ec) * 8;
  put(0, Math.min(4, capacityBits - bits.length));
  put(0, (8 - (bits.length % 8)) % 8);
  for (let pad = 0xec; bits.length < capacityBits; pad ^= 0xec ^ 0x11) put(pad, 8);
  const bytes: number[] = [];
  for (let i = 0; i < bits.length; i += 8) bytes.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));

  const [, levels] = TABLE[version - 1]!;
  const [ecLen, b1, d1, b2] = levels[ec];
  const divisor = rsDivisor(ecLen);
  const blocks: { data: number[]; ec: number[] }[] = [];
  let k = 0;
  for (let i = 0; i < b1 + b2; i++) {
    const len = i < b1 ? d1 : d1 + 1;
    const d = bytes.slice(k, k + len);
    k += len;
    blocks.push({ data: d, ec: rsRemainder(d, divisor) });
  }
  const out: number[] = [];
  for (let i = 0; i <= d1; i++) for (const b of blocks) if (i < b.data.length) out.push(b.data[i]!);
  for (let i = 0; i < ecLen; i++) for (const b of blocks) out.push(b.ec[i]!);
  return out;
}
