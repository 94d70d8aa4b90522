/**
 * A 1-bit-per-pixel picture for the device's small display: text drawn with our 5x7 font
 * (font5x7.ts), and its bytes in the two formats we need: the framebuffer layout of the Linux
 * ssd1307fb driver (1 bpp, rows of ceil(width/8) bytes, the leftmost pixel in bit 0) and PBM
 * (P4: the leftmost pixel in bit 7, 1 = black), which tests compare and people can open.
 * Pure. Must never: draw outside the picture (clipped), or draw a character the font lacks
 * (those show as "?").
 */
import { CELL_HEIGHT, CELL_WIDTH, GLYPH_HEIGHT, GLYPH_WIDTH, glyphOf } from "./font5x7.ts";

export class Bitmap {
  /** One byte per pixel, 1 = lit; row-major. */
  readonly pixels: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.pixels = new Uint8Array(width * height);
  }

  get(x: number, y: number): number {
    return this.pixels[y * this.width + x]!;
  }

  set(x: number, y: number, on: boolean): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.pixels[y * this.width + x] = on ? 1 : 0;
  }

  fill(x: number, y: number, w: number, h: number, on: boolean): void {
    for (let j = y; j < y + h; j++) for (let i = x; i < x + w; i++) this.set(i, j, on);
  }

  /** Draws text from the cell's top-left (x, y); `inverse` draws dark glyphs on a lit band. */
  text(x: number, y: number, s: string, inverse = false): void {
    let cx = x;
    for (const ch of s) {
      if (inverse) this.fill(cx, y, CELL_WIDTH, CELL_HEIGHT, true);
      const rows = glyphOf(ch);
      for (let r = 0; r < GLYPH_HEIGHT; r++)
        for (let c = 0; c < GLYPH_WIDTH; c++)
          if ((rows[r]! >> (GLYPH_WIDTH - 1 - c)) & 1) this.set(cx + c, y + r, !inverse);
      cx += CELL_WIDTH;
    }
  }

  /** The ssd1307fb framebuffer bytes: `stride` bytes a row, pixel x in bit (x % 8) of byte x/8. */
  toFramebuffer1bpp(stride = Math.ceil(this.width / 8)): Uint8Array {
    const out = new Uint8Array(stride * this.height);
    for (let y = 0; y < this.height; y++)
      for (let x = 0; x < this.width; x++) if (this.get(x, y)) out[y * stride + (x >> 3)]! |= 1 << (x & 7);
    return out;
  }

  /** Reads a framebuffer written by toFramebuffer1bpp (what a test reads back from the "device"). */
  static fromFramebuffer1bpp(
    bytes: Uint8Array,
    width: number,
    height: number,
    stride = Math.ceil(width / 8),
  ): Bitmap {
    const b = new Bitmap(width, height);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) b.set(x, y, ((bytes[y * stride + (x >> 3)]! >> (x & 7)) & 1) === 1);
    return b;
  }

  /** Binary PBM (P4), lit pixels black. */
  toPbm(): Uint8Array {
    const stride = Math.ceil(this.width / 8);
    const head = new TextEncoder().encode(`P4\n${this.width} ${this.height}\n`);
    const out = new Uint8Array(head.length + stride * this.height);
    out.set(head);
    for (let y = 0; y < this.height; y++)
      for (let x = 0; x < this.width; x++)
        if (this.get(x, y)) out[head.length + y * stride + (x >> 3)]! |= 0x80 >> (x & 7);
    return out;
  }

  /** Parses a P4 PBM (as toPbm writes it: no comments). */
  static fromPbm(bytes: Uint8Array): Bitmap {
    const m = /^P4\n(\d+) (\d+)\n/.exec(new TextDecoder("latin1").decode(bytes.subarray(0, 32)));
    if (!m) throw new Error("not a P4 PBM");
    const [w, h] = [Number(m[1]), Number(m[2])];
    const off = m[0].length;
    const stride = Math.ceil(w / 8);
    if (bytes.length !== off + stride * h) throw new Error("PBM size does not match its header");
    const b = new Bitmap(w, h);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        b.set(x, y, ((bytes[off + y * stride + (x >> 3)]! << (x & 7)) & 0x80) !== 0);
    return b;
  }

  /** The picture as text, "#" lit and "." dark, one line per row (for test failure messages). */
  toAscii(): string {
    const lines: string[] = [];
    for (let y = 0; y < this.height; y++) {
      let l = "";
      for (let x = 0; x < this.width; x++) l += this.get(x, y) ? "#" : ".";
      lines.push(l);
    }
    return `${lines.join("\n")}\n`;
  }
}
