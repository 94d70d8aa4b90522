/**
 * A small QR code encoder (ISO/IEC 18004): byte mode, versions 1-10, all four error-correction
 * levels, automatic or forced mask. Enough for a pairing token (64 hex digits: version 5-M).
 * Pure: encodeQr returns the module matrix; renderQr draws it for a terminal.
 * Checked against `qrencode` module by module in test/integration/image-qr.test.ts.
 */

import { codewords, dataCapacity, type EcLevel } from "./qr-data.ts";

export type { EcLevel };

const ALIGN: readonly (readonly number[])[] = [
  [],
  [6, 18],
  [6, 22],
  [6, 26],
  [6, 30],
  [6, 34],
  [6, 22, 38],
  [6, 24, 42],
  [6, 26, 46],
  [6, 28, 50],
];
const FORMAT_EC: Record<EcLevel, number> = { L: 1, M: 0, Q: 3, H: 2 };

export interface QrCode {
  readonly version: number;
  readonly size: number;
  readonly mask: number;
  /** modules[row][col], true = dark. */
  readonly modules: readonly (readonly boolean[])[];
}

class Matrix {
  readonly dark: boolean[][];
  readonly fixed: boolean[][];
  constructor(readonly size: number) {
    this.dark = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
    this.fixed = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
  }
  set(row: number, col: number, dark: boolean): void {
    this.dark[row]![col] = dark;
    this.fixed[row]![col] = true;
  }
}

function drawFunctionPatterns(m: Matrix, version: number): void {
  const n = m.size;
  for (let i = 0; i < n; i++) {
    m.set(6, i, i % 2 === 0);
    m.set(i, 6, i % 2 === 0);
  }
  for (const [r0, c0] of [
    [3, 3],
    [3, n - 4],
    [n - 4, 3],
  ] as const) {
    for (let dr = -4; dr <= 4; dr++) {
      for (let dc = -4; dc <= 4; dc++) {
        const r = r0 + dr;
        const c = c0 + dc;
        if (r < 0 || r >= n || c < 0 || c >= n) continue;
        const d = Math.max(Math.abs(dr), Math.abs(dc));
        m.set(r, c, d !== 2 && d !== 4);
      }
    }
  }
  const align = ALIGN[version - 1]!;
  for (const r of align) {
    for (const c of align) {
      if ((r === 6 && c === 6) || (r === 6 && c === n - 7) || (r === n - 7 && c === 6)) continue;
      for (let dr = -2; dr <= 2; dr++)
        for (let dc = -2; dc <= 2; dc++) m.set(r + dr, c + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
    }
  }
  drawFormat(m, "L", 0); // reserves the format areas; redrawn with the real values later
  if (version >= 7) {
    let rem = version;
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
    const bits = (version << 12) | rem;
    for (let i = 0; i < 18; i++) {
      const bit = ((bits >>> i) & 1) === 1;
      const a = n - 11 + (i % 3);
      const b = Math.floor(i / 3);
      m.set(b, a, bit);
      m.set(a, b, bit);
    }
  }
}

function drawFormat(m: Matrix, ec: EcLevel, mask: number): void {
  const data = (FORMAT_EC[ec] << 3) | mask;
  let rem = data;
  for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
  const bits = ((data << 10) | rem) ^ 0x5412;
  const bit = (i: number) => ((bits >>> i) & 1) === 1;
  const n = m.size;
  for (let i = 0; i <= 5; i++) m.set(i, 8, bit(i));
  m.set(7, 8, bit(6));
  m.set(8, 8, bit(7));
  m.set(8, 7, bit(8));
  for (let i = 9; i < 15; i++) m.set(8, 14 - i, bit(i));
  for (let i = 0; i < 8; i++) m.set(8, n - 1 - i, bit(i));
  for (let i = 8; i < 15; i++) m.set(n - 15 + i, 8, bit(i));
  m.set(n - 8, 8, true);
}

function placeData(m: Matrix, cw: readonly number[]): void {
  const n = m.size;
  let i = 0;
  for (let right = n - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let vert = 0; vert < n; vert++) {
      for (let j = 0; j < 2; j++) {
        const col = right - j;
        const upward = ((right + 1) & 2) === 0;
        const row = upward ? n - 1 - vert : vert;
        if (m.fixed[row]![col]) continue;
        const byte = cw[i >>> 3];
        m.dark[row]![col] = byte !== undefined && ((byte >>> (7 - (i & 7))) & 1) === 1;
        i++;
      }
    }
  }
}

const MASKS: readonly ((r: number, c: number) => boolean)[] = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (_, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

function applyMask(m: Matrix, mask: number): void {
  const f = MASKS[mask]!;
  for (let r = 0; r < m.size; r++)
    for (let c = 0; c < m.size; c++) if (!m.fixed[r]![c] && f(r, c)) m.dark[r]![c] = !m.dark[r]![c];
}

/** The spec's penalty score (rules N1-N4); the mask with the lowest wins. */
export function penalty(g: readonly (readonly boolean[])[]): number {
  const n = g.length;
  let score = 0;
  const lines: boolean[][] = [];
  for (let i = 0; i < n; i++)
    lines.push(
      [...g[i]!],
      g.map((row) => row[i]!),
    );
  for (const line of lines) {
    let run = 1;
    for (let i = 1; i <= n; i++) {
      if (i < n && line[i] === line[i - 1]) run++;
      else {
        if (run >= 5) score += 3 + (run - 5);
        run = 1;
      }
    }
    const padded = [...new Array<boolean>(4).fill(false), ...line, ...new Array<boolean>(4).fill(false)];
    const p = [true, false, true, true, true, false, true];
    for (let i = 0; i + 7 <= padded.length; i++) {
      if (!p.every((v, k) => padded[i + k] === v)) continue;
      const before = i >= 4 && padded.slice(i - 4, i).every((v) => !v);
      const after = i + 11 <= padded.length && padded.slice(i + 7, i + 11).every((v) => !v);
      if (before) score += 40;
      if (after) score += 40;
    }
  }
  let dark = 0;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (g[r]![c]) dark++;
      if (r + 1 < n && c + 1 < n) {
        const v = g[r]![c];
        if (g[r]![c + 1] === v && g[r + 1]![c] === v && g[r + 1]![c + 1] === v) score += 3;
      }
    }
  }
  const total = n * n;
  return score + (Math.ceil(Math.abs(dark * 20 - total * 10) / total) - 1) * 10;
}

export function encodeQr(
  data: Uint8Array | string,
  options: { ec?: EcLevel; minVersion?: number; mask?: number } = {},
): QrCode {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const ec = options.ec ?? "M";
  let version = Math.max(1, options.minVersion ?? 1);
  while (version <= 10 && dataCapacity(version, ec) < bytes.length + (version < 10 ? 2 : 3)) version++;
  if (version > 10) throw new Error(`QR: ${bytes.length} bytes do not fit in version 10-${ec}`);
  const cw = codewords(bytes, version, ec);
  const build = (mask: number) => {
    const m = new Matrix(version * 4 + 17);
    drawFunctionPatterns(m, version);
    placeData(m, cw);
    applyMask(m, mask);
    drawFormat(m, ec, mask);
    return m;
  };
  let best = options.mask ?? -1;
  if (best < 0) {
    let bestScore = Number.POSITIVE_INFINITY;
    for (let mask = 0; mask < 8; mask++) {
      const s = penalty(build(mask).dark);
      if (s < bestScore) [best, bestScore] = [mask, s];
    }
  }
  const m = build(best);
  return { version, size: m.size, mask: best, modules: m.dark };
}

/** Two module rows per text line with half blocks, black on white (so dark terminals scan too). */
export function renderQr(qr: QrCode, margin = 2): string {
  const n = qr.size + 2 * margin;
  const at = (r: number, c: number) => {
    const rr = r - margin;
    const cc = c - margin;
    return rr >= 0 && rr < qr.size && cc >= 0 && cc < qr.size && qr.modules[rr]![cc]!;
  };
  const lines: string[] = [];
  for (let r = 0; r < n; r += 2) {
    let line = "\x1b[30;47m";
    for (let c = 0; c < n; c++) {
      const top = at(r, c);
      const bottom = r + 1 < n && at(r + 1, c);
      line += top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " ";
    }
    lines.push(`${line}\x1b[0m`);
  }
  return `${lines.join("\n")}\n`;
}
