import { describe, expect, test } from "bun:test";
import { Bitmap } from "./bitmap.ts";
import { framebufferBytes } from "./fb-display.ts";
import { FONT_CHARS, glyphOf } from "./font5x7.ts";
import { renderPrompt } from "./prompt-screen.ts";

describe("1 bpp bitmap and the ssd1307fb layout", () => {
  test("pixel (x, y) is bit x%8 of byte y*stride + x/8 (the driver reads the leftmost pixel from bit 0)", () => {
    const b = new Bitmap(128, 64);
    b.set(0, 0, true);
    b.set(9, 1, true);
    b.set(127, 63, true);
    const fb = b.toFramebuffer1bpp();
    expect(fb.length).toBe(16 * 64);
    expect(fb[0]).toBe(0b0000_0001);
    expect(fb[16 + 1]).toBe(0b0000_0010);
    expect(fb[16 * 63 + 15]).toBe(0b1000_0000);
    expect(fb.reduce((n, x) => n + x, 0)).toBe(1 + 2 + 128);
    expect(Bitmap.fromFramebuffer1bpp(fb, 128, 64).toAscii()).toBe(b.toAscii());
  });

  test("PBM is MSB-first and round-trips", () => {
    const b = renderPrompt({ state: "waiting", client: "work", operation: "PKSIGN", key: "k", code: "0001" });
    const pbm = b.toPbm();
    expect(new TextDecoder().decode(pbm.subarray(0, 10))).toBe("P4\n128 64\n");
    expect(Bitmap.fromPbm(pbm).toAscii()).toBe(b.toAscii());
  });

  test("32 bpp (ssd130x DRM fbdev emulation): lit pixels are XRGB white", () => {
    const b = new Bitmap(4, 2);
    b.set(1, 1, true);
    const out = framebufferBytes(b, {
      device: "/dev/fb1",
      name: "ssd130xdrmfb",
      width: 4,
      height: 2,
      bitsPerPixel: 32,
      stride: 16,
    });
    expect([...out.subarray(16 + 4, 16 + 8)]).toEqual([0xff, 0xff, 0xff, 0]);
    expect(out.reduce((n, x) => n + x, 0)).toBe(3 * 0xff);
  });
});

describe("the 5x7 font", () => {
  test("all 95 printable ASCII characters, every one a distinct picture", () => {
    expect(FONT_CHARS.length).toBe(95);
    const pictures = new Set(FONT_CHARS.map((c) => glyphOf(c).join(",")));
    expect(pictures.size).toBe(95);
  });

  test("characters outside it (controls, non-ASCII) draw as ?", () => {
    for (const c of ["\u001b", "\u00e9", "\u202e", "\n"]) expect(glyphOf(c)).toEqual(glyphOf("?"));
  });

  test("text is clipped at the edge, never wrapped into memory outside the picture", () => {
    const b = new Bitmap(10, 8);
    b.text(6, 0, "WWWW");
    expect(b.pixels.length).toBe(80);
  });
});
