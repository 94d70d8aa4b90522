/**
 * The device's clock for `bun run chaos`: the agent process (and every service it starts) runs
 * with libfaketime preloaded, reading its offset from a file the suite rewrites, so the device's
 * wall clock jumps while it runs, as an NTP step or a Pi without a battery-backed clock booting
 * at an old date would move it. Only CLOCK_REALTIME moves (FAKETIME_DONT_FAKE_MONOTONIC): a
 * real clock step does not move the monotonic clock either, and the session's timers use that.
 * Checked to work with Bun (Date.now, new Date and child processes follow the file at once).
 * Must never: change the machine's clock, or be used outside the chaos rig.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { tempDir } from "../fixtures/qubes-stubs/harness.ts";

const CANDIDATES = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/arm-linux-gnueabihf/faketime/libfaketime.so.1",
  "/usr/lib/faketime/libfaketime.so.1",
];

/** The libfaketime library (Debian package `faketime`), or null when it is not installed. */
export function libfaketime(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export class DeviceClock {
  /** The device clock's offset from real time, seconds. */
  offset = 0;

  private constructor(
    private readonly file: string,
    readonly env: Record<string, string>,
  ) {}

  static create(): DeviceClock {
    const lib = libfaketime();
    if (lib === null) {
      throw new ConfigError(
        "the device clock faults need libfaketime: apt-get install faketime (scripts/system-deps.sh)",
      );
    }
    const file = join(tempDir("qa-chaos-clock-"), "offset");
    writeFileSync(file, "+0\n");
    return new DeviceClock(file, {
      LD_PRELOAD: lib,
      FAKETIME_TIMESTAMP_FILE: file,
      FAKETIME_NO_CACHE: "1", // read the offset on every call: a jump takes effect at once
      FAKETIME_DONT_FAKE_MONOTONIC: "1",
    });
  }

  /** Moves the device's clock by `seconds` (negative: back), from now on. */
  jump(seconds: number): void {
    this.offset += Math.trunc(seconds);
    writeFileSync(this.file, `${this.offset >= 0 ? "+" : ""}${this.offset}\n`);
  }
}
