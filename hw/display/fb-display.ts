/**
 * The device's small display through the kernel framebuffer (/dev/fbN): the SSD1306 panel's
 * driver (ssd1307fb: 1 bpp, "Solomon SSD1307"; or ssd130x's DRM fbdev emulation: 32 bpp
 * XRGB8888) is found by the framebuffer's name in /sys/class/graphics, its geometry read from
 * there, and each screen written whole at offset 0 (the driver pushes it to the panel).
 * Must never: throw from show() (a missing or unplugged panel only reports through onError),
 * write to a framebuffer that is not an SSD130x panel (an HDMI console's fb0 is left alone),
 * or write a format the driver did not announce.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import type { Bitmap } from "./bitmap.ts";

export const GRAPHICS_ROOT = "/sys/class/graphics";
/** Framebuffer names of the SSD130x drivers (fix.id / the DRM driver's name). */
const PANEL_NAME = /^(Solomon SSD13\d\d|ssd130\d|ssd130xdrmfb|ssd1307fb)/i;

export interface FramebufferInfo {
  readonly device: string;
  readonly name: string;
  readonly width: number;
  readonly height: number;
  readonly bitsPerPixel: 1 | 32;
  /** Bytes a row (line_length). */
  readonly stride: number;
}

function readSys(dir: string, file: string): string {
  return fs.readFileSync(join(dir, file), "utf8").trim();
}

/** Reads fbN's geometry from sysfs; refuses what is not an SSD130x panel in a format we write. */
export function framebufferInfo(device: string, root = GRAPHICS_ROOT): FramebufferInfo {
  const fb = device.replace(/^.*\//, "");
  const dir = join(root, fb);
  let name: string;
  let size: string;
  let bpp: number;
  let stride: number;
  try {
    name = readSys(dir, "name");
    size = readSys(dir, "virtual_size");
    bpp = Number(readSys(dir, "bits_per_pixel"));
    stride = Number(readSys(dir, "stride"));
  } catch {
    throw new ConfigError(
      `${device} has no framebuffer description in ${dir}; is the panel's driver loaded (dtoverlay=ssd1306)?`,
    );
  }
  if (!PANEL_NAME.test(name))
    throw new ConfigError(`${device} is "${name}", not an SSD130x panel; name the panel's /dev/fbN`);
  const m = /^(\d+),(\d+)$/.exec(size);
  if (!m) throw new ConfigError(`${device}: unexpected virtual_size "${size}"`);
  const [width, height] = [Number(m[1]), Number(m[2])];
  if (bpp !== 1 && bpp !== 32)
    throw new ConfigError(`${device}: ${bpp} bits per pixel is not supported (1 or 32)`);
  if (!(stride >= Math.ceil((width * bpp) / 8)))
    throw new ConfigError(`${device}: stride ${stride} too small`);
  return { device, name, width, height, bitsPerPixel: bpp as 1 | 32, stride };
}

/** The first framebuffer whose name is an SSD130x panel's, or null. */
export function findPanel(root = GRAPHICS_ROOT, devDir = "/dev"): FramebufferInfo | null {
  let entries: string[];
  try {
    entries = fs.readdirSync(root).filter((e) => /^fb\d+$/.test(e));
  } catch {
    return null;
  }
  for (const fb of entries.sort()) {
    try {
      return framebufferInfo(join(devDir, fb), root);
    } catch {}
  }
  return null;
}

/** The bytes of a picture in the framebuffer's format (the picture is clipped or padded). */
export function framebufferBytes(b: Bitmap, info: FramebufferInfo): Uint8Array {
  const out = new Uint8Array(info.stride * info.height);
  const w = Math.min(b.width, info.width);
  const h = Math.min(b.height, info.height);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      if (!b.get(x, y)) continue;
      if (info.bitsPerPixel === 1) out[y * info.stride + (x >> 3)]! |= 1 << (x & 7);
      else out.fill(0xff, y * info.stride + x * 4, y * info.stride + x * 4 + 3); // XRGB8888 white
    }
  return out;
}

export class FramebufferDisplay {
  constructor(
    readonly info: FramebufferInfo,
    private readonly onError: (why: string) => void = () => {},
  ) {}

  get description(): string {
    return `${this.info.name} ${this.info.width}x${this.info.height} on ${this.info.device}`;
  }

  /** Writes the whole screen; never throws. */
  show(b: Bitmap): void {
    let fd: number | null = null;
    try {
      fd = fs.openSync(this.info.device, fs.constants.O_WRONLY);
      const bytes = framebufferBytes(b, this.info);
      fs.writeSync(fd, bytes, 0, bytes.length, 0);
    } catch (e) {
      this.onError(`${this.info.device}: ${(e as NodeJS.ErrnoException).code ?? "write failed"}`);
    } finally {
      if (fd !== null) fs.closeSync(fd);
    }
  }
}
