/**
 * Confirmation by a key on the device's own console (the Armory has no button): `y` approves,
 * `n` denies, on /dev/tty1 or a configured tty (the Armory's UART console via the debug
 * accessory, or a keyboard+screen on a Pi). The tty is put in non-canonical mode with stty (one
 * key, no Enter, no echo) and restored on close().
 * Must never: read a tty the host can write to. USB gadget serial ports (/dev/ttyGS*) are the
 * host's end of the link, and pseudo-terminals (/dev/pts/*) are ssh sessions or programs, so
 * both are refused (ptys only with allowPty, for tests), as is any path in `forbidden` (the
 * agent passes its own link's tty). Keys typed while no wait is pending never count.
 */
import { closeSync, constants, openSync, realpathSync, writeSync } from "node:fs";
import { platform } from "../platform/index.ts";
import type { ByteSource } from "../transport/transport.ts";
import type { ApprovalInput, Verdict } from "./input.ts";

export interface ConsoleInputOptions {
  /** Default /dev/tty1. */
  tty?: string;
  /** Written to the tty when a wait starts; default a one-line y/n prompt. "" writes nothing. */
  prompt?: string;
  /** Ttys that must never be used (the link's own serial device). */
  forbidden?: readonly string[];
  /** Allows /dev/pts/* (tests only). */
  allowPty?: boolean;
}

const DEFAULT_PROMPT = "\r\nqubes-air: a request waits for confirmation. Press y to allow, n to deny.\r\n";

/** Why a tty may not be a confirmation console, or null if it may. */
export function consoleRefusal(path: string, real: string, options: ConsoleInputOptions): string | null {
  if (/^\/dev\/ttyGS\d+$/.test(real)) return `${path} is a USB gadget serial port: the host writes to it`;
  if (/^\/dev\/pts\/\d+$/.test(real) && !options.allowPty) {
    return `${path} is a pseudo-terminal (ssh or a program can type into it)`;
  }
  for (const f of options.forbidden ?? []) {
    let forbiddenReal = f;
    try {
      forbiddenReal = realpathSync(f);
    } catch {}
    if (real === forbiddenReal) return `${path} is the link's own serial device`;
  }
  return null;
}

/** The verdict a key byte means, or null. */
export function keyVerdict(byte: number): Verdict | null {
  if (byte === 0x79 || byte === 0x59) return "approve"; // y Y
  if (byte === 0x6e || byte === 0x4e) return "deny"; // n N
  return null;
}

async function stty(args: string[]): Promise<string> {
  const child = await platform.spawn(["stty", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let out = "";
  for (let c = await child.stdout!.read(); c; c = await child.stdout!.read())
    out += new TextDecoder().decode(c);
  const exit = await child.exited;
  child.stdout!.close();
  child.stderr!.close();
  if (exit.code !== 0) throw new Error(`stty ${args.join(" ")} failed (${exit.code ?? exit.signal})`);
  return out.trim();
}

export class ConsoleInput implements ApprovalInput {
  readonly description: string;
  private waiter: { resolve: (v: Verdict) => void; reject: (e: Error) => void } | null = null;
  private closed = false;
  private released = false;

  private constructor(
    private readonly tty: string,
    private readonly reader: ByteSource,
    private readonly saved: string,
    private readonly prompt: string,
  ) {
    this.description = `console ${tty}`;
    void this.pump();
  }

  static async open(options: ConsoleInputOptions = {}): Promise<ConsoleInput> {
    const tty = options.tty ?? "/dev/tty1";
    const named = consoleRefusal(tty, tty, options);
    if (named) throw new Error(`refusing ${tty} as the confirmation console: ${named}`);
    let real: string;
    try {
      real = realpathSync(tty);
    } catch (e) {
      throw new Error(`confirmation console ${tty}: ${(e as { code?: string }).code ?? String(e)}`);
    }
    const refusal = consoleRefusal(tty, real, options);
    if (refusal) throw new Error(`refusing ${tty} as the confirmation console: ${refusal}`);
    const saved = await stty(["-F", real, "-g"]);
    await stty(["-F", real, "-icanon", "-echo", "min", "1", "time", "0"]);
    let reader: ByteSource;
    try {
      reader = await platform.openTtyReader(real);
    } catch (e) {
      await stty(["-F", real, saved]).catch(() => {});
      throw e;
    }
    return new ConsoleInput(real, reader, saved, options.prompt ?? DEFAULT_PROMPT);
  }

  private async pump(): Promise<void> {
    try {
      for (let c = await this.reader.read(); c; c = await this.reader.read()) {
        for (const byte of c) {
          const v = keyVerdict(byte);
          const w = this.waiter;
          if (v && w) {
            this.waiter = null;
            w.resolve(v);
          }
        }
      }
    } catch {
      // The tty went away: a pending wait fails, and so do later ones.
    }
    this.closed = true;
    this.waiter?.reject(new Error(`${this.description} went away`));
    this.waiter = null;
  }

  private say(text: string): void {
    if (!text) return;
    try {
      const fd = openSync(this.tty, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
    } catch {
      // A prompt that cannot be shown does not stop the confirmation (the LED shows it).
    }
  }

  waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    if (this.closed) return Promise.reject(new Error(`${this.description} is closed`));
    if (this.waiter) return Promise.reject(new Error(`${this.description}: a wait is already pending`));
    if (signal.aborted) return Promise.reject(signal.reason);
    this.say(this.prompt);
    return new Promise<Verdict>((resolve, reject) => {
      const onAbort = () => {
        this.waiter = null;
        reject(signal.reason);
      };
      this.waiter = {
        resolve: (v) => {
          signal.removeEventListener("abort", onAbort);
          this.say(v === "approve" ? "allowed\r\n" : "denied\r\n");
          resolve(v);
        },
        reject: (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    this.closed = true;
    this.reader.close();
    void stty(["-F", this.tty, this.saved]).catch(() => {});
  }
}
