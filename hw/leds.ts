/**
 * The confirmation indicator on a /sys/class/leds LED (root path injectable for tests):
 *   waiting  - slow blink (`timer` trigger, 200 ms on / 800 ms off) until the next call
 *   approved - solid on for `flashMs`, then idle
 *   denied   - fast flicker (`timer`, 60/60 ms) for `flashMs`, then idle
 *   conflict - two requests raced one prompt: long-short blink (`timer`, 600/150 ms) for twice
 *              `flashMs`, so it is not mistaken for a plain denial
 *   idle     - the LED's original trigger (e.g. mmc0 or heartbeat) and brightness, as found
 * Must never: throw from show() (a missing or read-only LED is reported once through onError),
 * or leave the LED in our pattern after close().
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LedSpec } from "./boards.ts";
import type { Indicator, IndicatorPattern } from "./input.ts";

export const LEDS_ROOT = "/sys/class/leds";

export interface LedOptions {
  /** Default /sys/class/leds. */
  root?: string;
  /** How long approved/denied show before returning to idle; default 2000 ms. */
  flashMs?: number;
  /** Called with a message when a write fails (once per distinct message). */
  onError?: (message: string) => void;
}

/** "none rc-feedback [mmc0] timer" -> current "mmc0" and all names. */
export function parseTrigger(text: string): { current: string | null; available: string[] } {
  let current: string | null = null;
  const available = text
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((t) => {
      const m = /^\[(.*)\]$/.exec(t);
      if (m) current = m[1]!;
      return m ? m[1]! : t;
    });
  return { current, available };
}

export class LedIndicator implements Indicator {
  readonly description: string;
  private readonly dir: string;
  private readonly originalTrigger: string;
  private readonly originalBrightness: string;
  private readonly max: string;
  private readonly flashMs: number;
  private readonly reported = new Set<string>();
  private revert: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly options: LedOptions = {},
  ) {
    this.dir = join(options.root ?? LEDS_ROOT, name);
    this.description = `led ${name}`;
    this.flashMs = options.flashMs ?? 2000;
    this.originalTrigger = parseTrigger(this.read("trigger") ?? "").current ?? "none";
    this.originalBrightness = this.read("brightness") ?? "0";
    this.max = this.read("max_brightness") ?? "1";
  }

  private read(file: string): string | null {
    try {
      return readFileSync(join(this.dir, file), "utf8").trim();
    } catch {
      return null;
    }
  }

  private write(file: string, value: string): void {
    try {
      writeFileSync(join(this.dir, file), value);
    } catch (e) {
      const msg = `${this.description}: cannot write ${file}: ${(e as { code?: string }).code ?? String(e)}`;
      if (!this.reported.has(msg)) {
        this.reported.add(msg);
        this.options.onError?.(msg);
      }
    }
  }

  private blink(onMs: number, offMs: number): void {
    this.write("trigger", "timer");
    // The kernel creates delay_on/delay_off when the timer trigger is set.
    this.write("delay_on", String(onMs));
    this.write("delay_off", String(offMs));
  }

  private restore(): void {
    this.write("trigger", this.originalTrigger);
    if (this.originalTrigger === "none") this.write("brightness", this.originalBrightness);
  }

  show(pattern: IndicatorPattern): void {
    if (this.closed) return;
    clearTimeout(this.revert);
    this.revert = undefined;
    switch (pattern) {
      case "waiting":
        this.blink(200, 800);
        return;
      case "approved":
        this.write("trigger", "none");
        this.write("brightness", this.max);
        break;
      case "denied":
        this.blink(60, 60);
        break;
      case "conflict":
        this.blink(600, 150);
        this.revert = setTimeout(() => this.show("idle"), 2 * this.flashMs);
        (this.revert as { unref?: () => void }).unref?.();
        return;
      case "idle":
        this.restore();
        return;
    }
    this.revert = setTimeout(() => this.show("idle"), this.flashMs);
    (this.revert as { unref?: () => void }).unref?.();
  }

  close(): void {
    if (this.closed) return;
    clearTimeout(this.revert);
    this.restore();
    this.closed = true;
  }
}

/** An indicator that shows nothing, for boards without a usable LED. */
export function nullIndicator(reason: string): Indicator {
  return { description: `no LED (${reason})`, show() {}, close() {} };
}

/** The first LED of the profile's list that exists under `root`, or a null indicator. */
export function openLedIndicator(leds: readonly LedSpec[], options: LedOptions = {}): Indicator {
  const root = options.root ?? LEDS_ROOT;
  for (const spec of leds) {
    for (const name of spec.names) {
      if (existsSync(join(root, name, "trigger"))) return new LedIndicator(name, options);
    }
  }
  const wanted = leds.flatMap((l) => l.names).join(", ") || "none configured";
  return nullIndicator(`none of ${wanted} in ${root}`);
}
