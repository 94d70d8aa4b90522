/**
 * `qubes-air flash IMAGE DEVICE`: the image flasher (images/flash.ts) with the real terminal
 * (images/flash-main.ts processFlashIO: stdin for the confirmation, Ctrl-C stops cleanly).
 * Its options, checks and exit statuses are the flasher's own; this only adds it to the CLI.
 */
import { FLASH_SUMMARY, FLASH_USAGE, flash } from "../../images/flash.ts";
import { processFlashIO } from "../../images/flash-main.ts";
import type { Command } from "./common.ts";

export const flashCommand: Command = {
  name: "flash",
  summary: FLASH_SUMMARY,
  help: `${FLASH_USAGE.replace(/^usage:/, "Usage:").trimEnd()}

Examples:
  qubes-air flash qubes-air-pi4.img /dev/sdb
  qubes-air flash --sha256=$(cat qubes-air-pi4.img.sha256) qubes-air-pi4.img /dev/disk/by-id/usb-SanDisk_…
  qubes-air flash --yes --expect-serial=4C530001 qubes-air-armory.img /dev/sdc   # scripts`,

  async run(args, ctx) {
    const { io, dispose } = processFlashIO();
    try {
      // Output through the CLI's synchronous writers, so nothing is lost at exit.
      return await flash(args, { ...io, out: (t) => ctx.out(t), err: (t) => ctx.err(t) });
    } finally {
      dispose();
    }
  },
};
