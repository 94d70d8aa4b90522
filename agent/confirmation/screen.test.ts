/**
 * The display checked as a picture: a confirmation event goes through openScreens() to a file
 * standing in for the SSD1306's /dev/fb1 (with a sysfs description like ssd1307fb's: 1 bpp,
 * 16 bytes a row), the framebuffer bytes are read back in the driver's bit order and compared
 * pixel for pixel with the expected image stored as test data (test/fixtures/display/*.pbm).
 * Each run also leaves a PNG of what was drawn next to the test's temp dir (path logged), to
 * check by eye; the stored PBMs were checked that way.
 */
import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Bitmap } from "../../hw/display/bitmap.ts";
import { FramebufferDisplay, framebufferInfo } from "../../hw/display/fb-display.ts";
import { bitmapToPng } from "../../test/helpers/png.ts";
import type { ConfirmationEvent } from "./manager.ts";
import { consoleLine, openScreens, PromptScreens } from "./screen.ts";

const FIXTURES = resolve(import.meta.dir, "../../test/fixtures/display");
const dir = fs.mkdtempSync(join(tmpdir(), "qa-display-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A fake /sys/class/graphics with the HDMI console on fb0 and the OLED on fb1, and their /dev. */
function fakeGraphics() {
  const sys = join(dir, "sys");
  const dev = join(dir, "dev");
  const fb = (n: string, files: Record<string, string>) => {
    fs.mkdirSync(join(sys, n), { recursive: true });
    for (const [k, v] of Object.entries(files)) fs.writeFileSync(join(sys, n, k), `${v}\n`);
  };
  fb("fb0", { name: "vc4drmfb", virtual_size: "1920,1080", bits_per_pixel: "32", stride: "7680" });
  fb("fb1", { name: "Solomon SSD1307", virtual_size: "128,64", bits_per_pixel: "1", stride: "16" });
  fs.mkdirSync(dev, { recursive: true });
  fs.writeFileSync(join(dev, "fb0"), new Uint8Array(16));
  fs.writeFileSync(join(dev, "fb1"), new Uint8Array(16 * 64));
  return { sys, dev };
}

const WAITING: ConfirmationEvent = {
  kind: "waiting",
  id: 42,
  code: "0042",
  request: {
    client: "work",
    service: "qubes.Gpg2",
    operation: "PKSIGN",
    key: "Jane Doe <jane@example.org> [76BABA4F5E7E3642]",
    hashAlgo: "sha256",
    digestPrefix: "B0A45CB3",
    digestSuffix: "724FA6E7",
  },
};

function compare(name: string, got: Bitmap): void {
  const png = join(dir, `${name}.png`);
  fs.writeFileSync(png, bitmapToPng(got));
  fs.writeFileSync(join(dir, `${name}.pbm`), got.toPbm());
  console.log(`display test: drew ${png}`);
  const expected = Bitmap.fromPbm(fs.readFileSync(join(FIXTURES, `${name}.pbm`)));
  expect(got.toAscii()).toBe(expected.toAscii());
}

describe("the display, as a picture", () => {
  test("waiting: the framebuffer holds exactly the expected image (qube, operation, key, code, digest)", () => {
    const g = fakeGraphics();
    const lines: string[] = [];
    const screens = openScreens(
      { framebuffer: "auto", console: null },
      "pi-gpg",
      (e, f) => lines.push(`${e} ${JSON.stringify(f)}`),
      g.sys,
      g.dev,
    );
    expect(lines.join("\n")).toContain("Solomon SSD1307 128x64 on");
    // The idle screen was drawn at start; HDMI's fb0 was left alone.
    compare("idle", Bitmap.fromFramebuffer1bpp(fs.readFileSync(join(g.dev, "fb1")), 128, 64));
    expect(fs.readFileSync(join(g.dev, "fb0"))).toEqual(Buffer.alloc(16));
    screens.onEvent(WAITING);
    compare("prompt-waiting", Bitmap.fromFramebuffer1bpp(fs.readFileSync(join(g.dev, "fb1")), 128, 64));
    screens.onEvent({ ...WAITING, kind: "approved" });
    compare("prompt-approved", Bitmap.fromFramebuffer1bpp(fs.readFileSync(join(g.dev, "fb1")), 128, 64));
  });

  test("a decision goes back to the idle screen after a while; a new prompt cancels that", async () => {
    const g = fakeGraphics();
    const panel = new FramebufferDisplay(framebufferInfo(join(g.dev, "fb1"), g.sys));
    const screens = new PromptScreens({
      panel,
      console: null,
      device: "pi-gpg",
      log: () => {},
      decisionShownMs: 30,
    });
    const shown = () => Bitmap.fromFramebuffer1bpp(fs.readFileSync(join(g.dev, "fb1")), 128, 64).toAscii();
    const idle = Bitmap.fromPbm(fs.readFileSync(join(FIXTURES, "idle.pbm"))).toAscii();
    const waiting = Bitmap.fromPbm(fs.readFileSync(join(FIXTURES, "prompt-waiting.pbm"))).toAscii();
    screens.onEvent({ ...WAITING, kind: "denied" });
    screens.onEvent(WAITING); // the next request before the timer: it stays
    await Bun.sleep(60);
    expect(shown()).toBe(waiting);
    screens.onEvent({ ...WAITING, kind: "approved" });
    const deadline = Date.now() + 5000;
    while (shown() !== idle && Date.now() < deadline) await Bun.sleep(10);
    expect(shown()).toBe(idle);
  });

  test("the console line: one printable line with the same code", () => {
    const con = join(dir, "tty1");
    fs.writeFileSync(con, "");
    const screens = openScreens({ framebuffer: null, console: con }, "pi-gpg", () => {});
    screens.onEvent(WAITING);
    screens.onEvent({ ...WAITING, request: { ...WAITING.request, key: "evil\u001b[2Jkey" }, kind: "denied" });
    expect(fs.readFileSync(con, "utf8")).toBe(
      "qubes-air [0042] PRESS TO APPROVE: work PKSIGN Jane Doe <jane@example.org> [76BABA4F5E7E3642] sha256 B0A45CB3\n" +
        "qubes-air [0042] denied: work PKSIGN evil?[2Jkey sha256 B0A45CB3\n",
    );
    expect(consoleLine(WAITING)).toMatch(/^[\x20-\x7e]+\n$/);
  });

  test("a framebuffer that is not the panel, or is missing, is not written; the agent goes on", () => {
    const g = fakeGraphics();
    const lines: string[] = [];
    openScreens(
      { framebuffer: join(g.dev, "fb0"), console: null },
      "pi-gpg",
      (e, f) => lines.push(`${e} ${JSON.stringify(f)}`),
      g.sys,
    );
    expect(lines[0]).toContain("display-unavailable");
    expect(lines[0]).toContain("not an SSD130x panel");
    expect(fs.readFileSync(join(g.dev, "fb0"))).toEqual(Buffer.alloc(16));
    const none = openScreens(
      { framebuffer: "auto", console: null },
      "pi-gpg",
      (e) => lines.push(e),
      join(dir, "nothing"),
    );
    none.onEvent(WAITING);
    expect(lines).toContain("display-unavailable");
  });
});
