/**
 * A push-button on a GPIO line through the v2 character device: the chip is found by label
 * (GPIO_GET_CHIPINFO on each /dev/gpiochipN) and the line by name (GPIO_V2_GET_LINEINFO), never
 * by number; the line is requested as an input with both edges, pull-up bias and debounce. Events
 * are read from a non-blocking line fd on a short timer while a wait is pending.
 *
 * The syscalls come in through GpioSyscalls (libc via bun:ffi in hw/gpio-ffi.ts; a simulated
 * chip in tests). Faults of the board are a GpioLineError (typed by `fault`, an operator fault
 * whose message says what to check); our own misuse is an assert.
 * Must never: count an event from before waitForVerdict (pending events are drained first), or
 * keep polling when no wait is pending.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { EXIT } from "../core/cli/exit-codes.ts";
import { AssertionError, ConfigError } from "../core/errors.ts";
import {
  decodeChipInfo,
  decodeLineEvents,
  decodeLineInfo,
  decodeLineRequestFd,
  encodeLineInfoQuery,
  encodeLineRequest,
  GPIO_GET_CHIPINFO_IOCTL,
  GPIO_V2_GET_LINE_IOCTL,
  GPIO_V2_GET_LINEINFO_IOCTL,
  LineFlag,
  SIZEOF,
} from "./gpio-uapi.ts";
import type { ApprovalInput, Verdict } from "./input.ts";
import { edgeToButton, LONG_PRESS_MS, PressClassifier } from "./press.ts";

/** The few libc calls the chardev backend needs. Errors are thrown with an errno `code`. */
export interface GpioSyscalls {
  /** open(path, O_RDWR | O_CLOEXEC); returns the fd. */
  open(path: string): number;
  /** ioctl(fd, request, buf): the kernel reads and fills `buf` in place. */
  ioctl(fd: number, request: number, buf: Uint8Array): void;
  /** read(fd, buf): bytes read, or null when a non-blocking fd has nothing (EAGAIN). */
  read(fd: number, buf: Uint8Array): number | null;
  setNonBlocking(fd: number): void;
  close(fd: number): void;
}

/** Where a button is wired: chip by label, line by name (hw/boards.ts). */
export interface ButtonLine {
  chipLabel: string;
  line: string;
  /** Pressed = low (a button to ground with the pull-up enabled). */
  activeLow: boolean;
}

export interface ButtonOptions {
  /** Default "/dev". */
  devDir?: string;
  longPressMs?: number;
  /** Kernel debounce period, default 10 ms (0 disables). */
  debounceUs?: number;
  /** Poll period of the line fd while waiting, default 20 ms. */
  pollMs?: number;
  consumer?: string;
}

export interface FoundLine {
  chipPath: string;
  chipName: string;
  offset: number;
  consumer: string;
  used: boolean;
}

const errCode = (e: unknown) => (e as { code?: string }).code ?? String(e);

/** What went wrong with the button's GPIO line (matched by `fault`, never by message). */
export type GpioFault =
  | "no-gpio-dir" // /dev could not be listed
  | "no-chip" // no chip has the configured label
  | "no-line" // the chip has no line of that name
  | "line-busy" // another driver (e.g. a gpio-keys overlay) holds the line
  | "request-failed" // the kernel refused the line request
  | "no-backend" // neither the character device (bun:ffi) nor the libgpiod tools are usable
  | "monitor-ended" // the libgpiod tools' gpiomon ended before a press
  | "closed"; // the button was closed while a wait was pending

/**
 * A fault of the board or its configuration: an operator fault (ConfigError, exit 1: the
 * hardware said no, not the command line), with what to check in the message.
 */
export class GpioLineError extends ConfigError {
  constructor(
    readonly fault: GpioFault,
    message: string,
  ) {
    super(message, EXIT.FAILURE);
  }
}

export const CHECK_CONFIG =
  "check confirm.button's chipLabel and line in the agent config against `gpioinfo`";

/** Finds the line by chip label and line name; errors say what exists instead. */
export function findLine(sys: GpioSyscalls, line: ButtonLine, devDir = "/dev"): FoundLine {
  let chips: string[];
  try {
    chips = readdirSync(devDir).filter((n) => /^gpiochip\d+$/.test(n));
  } catch (e) {
    throw new GpioLineError("no-gpio-dir", `cannot list ${devDir}: ${errCode(e)}`);
  }
  chips.sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
  const labels: string[] = [];
  for (const chip of chips) {
    const chipPath = join(devDir, chip);
    let fd: number;
    try {
      fd = sys.open(chipPath);
    } catch (e) {
      labels.push(`${chip} (cannot open: ${errCode(e)})`);
      continue;
    }
    // The chip with the label, searched to the end: its line, or "no-line" (said after the fd is
    // closed, outside the try that turns ioctl failures into notes).
    let found: FoundLine | "no-line" | null = null;
    try {
      const info = new Uint8Array(SIZEOF.chipInfo);
      sys.ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, info);
      const chipInfo = decodeChipInfo(info);
      labels.push(`${chip} [${chipInfo.label}]`);
      if (chipInfo.label === line.chipLabel)
        found = lineOnChip(sys, fd, chipPath, chipInfo, line) ?? "no-line";
    } catch (e) {
      labels.push(`${chip} (${errCode(e)})`);
    } finally {
      sys.close(fd);
    }
    if (found === "no-line")
      throw new GpioLineError(
        "no-line",
        `gpio chip ${chip} [${line.chipLabel}] has no line named ${line.line}: ${CHECK_CONFIG}`,
      );
    if (found) return found;
  }
  const seen = labels.length ? labels.join(", ") : "none";
  throw new GpioLineError(
    "no-chip",
    `no gpio chip labelled ${line.chipLabel} in ${devDir} (found: ${seen}): ${CHECK_CONFIG}`,
  );
}

/** The line named line.line on an open chip, or null when the chip has none by that name. */
function lineOnChip(
  sys: GpioSyscalls,
  fd: number,
  chipPath: string,
  chipInfo: { name: string; lines: number },
  line: ButtonLine,
): FoundLine | null {
  for (let offset = 0; offset < chipInfo.lines; offset++) {
    const buf = encodeLineInfoQuery(offset);
    sys.ioctl(fd, GPIO_V2_GET_LINEINFO_IOCTL, buf);
    const li = decodeLineInfo(buf);
    if (li.name === line.line) {
      return {
        chipPath,
        chipName: chipInfo.name,
        offset,
        consumer: li.consumer,
        used: (li.flags & LineFlag.USED) !== 0n,
      };
    }
  }
  return null;
}

export class ChardevButton implements ApprovalInput {
  readonly description: string;
  private readonly classifier: PressClassifier;
  private readonly buf = new Uint8Array(SIZEOF.lineEvent * 16);
  private pending = false;
  private closed = false;

  private constructor(
    private readonly sys: GpioSyscalls,
    private readonly lineFd: number,
    private readonly offset: number,
    private readonly line: ButtonLine,
    private readonly pollMs: number,
    longPressMs: number,
  ) {
    this.description = `gpio ${line.chipLabel}/${line.line}`;
    this.classifier = new PressClassifier(longPressMs);
  }

  /** Finds and requests the line; the request holds it until close(). */
  static open(sys: GpioSyscalls, line: ButtonLine, options: ButtonOptions = {}): ChardevButton {
    const found = findLine(sys, line, options.devDir);
    if (found.used) {
      throw new GpioLineError(
        "line-busy",
        `${line.chipLabel}/${line.line} is already in use by "${found.consumer || "the kernel"}": ` +
          "remove the overlay or driver that claims it (e.g. a gpio-keys dtoverlay in config.txt), or use another line",
      );
    }
    const flags =
      LineFlag.INPUT |
      LineFlag.EDGE_RISING |
      LineFlag.EDGE_FALLING |
      (line.activeLow ? LineFlag.BIAS_PULL_UP : LineFlag.BIAS_PULL_DOWN);
    const chipFd = sys.open(found.chipPath);
    let lineFd: number;
    try {
      const request = (debounceUs: number) => {
        const req = encodeLineRequest({
          offsets: [found.offset],
          consumer: options.consumer ?? "qubes-air",
          flags,
          debounceUs,
          eventBufferSize: 64,
        });
        sys.ioctl(chipFd, GPIO_V2_GET_LINE_IOCTL, req);
        return decodeLineRequestFd(req);
      };
      const debounce = options.debounceUs ?? 10_000;
      try {
        lineFd = request(debounce);
      } catch (e) {
        // Old kernels (< 5.10) have no debounce attribute: the classifier's minimum press covers it.
        if (debounce === 0 || errCode(e) !== "EINVAL") throw e;
        lineFd = request(0);
      }
    } catch (e) {
      throw new GpioLineError(
        "request-failed",
        `cannot request ${line.chipLabel}/${line.line}: ${errCode(e)} (the agent needs read-write access to ${found.chipPath})`,
      );
    } finally {
      sys.close(chipFd);
    }
    sys.setNonBlocking(lineFd);
    return new ChardevButton(
      sys,
      lineFd,
      found.offset,
      line,
      options.pollMs ?? 20,
      options.longPressMs ?? LONG_PRESS_MS,
    );
  }

  /** Reads everything pending; returns a verdict if a press completed. */
  private pump(consume: boolean): Verdict | null {
    for (;;) {
      const n = this.sys.read(this.lineFd, this.buf);
      if (n === null || n === 0) return null;
      if (!consume) continue;
      for (const ev of decodeLineEvents(this.buf.subarray(0, n))) {
        if (ev.offset !== this.offset) continue;
        const verdict = this.classifier.feed(edgeToButton(ev.edge, this.line.activeLow), ev.timestampNs);
        if (verdict) return verdict;
      }
    }
  }

  waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    if (this.closed) return Promise.reject(new GpioLineError("closed", `${this.description} is closed`));
    // The confirmation manager runs one prompt at a time: a second wait is our bug.
    if (this.pending) return Promise.reject(new AssertionError("gpio button: a wait is already pending"));
    if (signal.aborted) return Promise.reject(signal.reason);
    this.pending = true;
    this.pump(false); // presses before the wait never count
    this.classifier.reset();
    return new Promise<Verdict>((resolve, reject) => {
      const finish = (fn: () => void) => {
        clearInterval(timer);
        signal.removeEventListener("abort", onAbort);
        this.pending = false;
        fn();
      };
      const onAbort = () => finish(() => reject(signal.reason));
      const timer = setInterval(() => {
        try {
          if (this.closed)
            return finish(() => reject(new GpioLineError("closed", `${this.description} was closed`)));
          const verdict = this.pump(true);
          if (verdict) finish(() => resolve(verdict));
        } catch (e) {
          finish(() => reject(e));
        }
      }, this.pollMs);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sys.close(this.lineFd);
  }
}
