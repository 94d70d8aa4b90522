/**
 * The PIN retry counter on the device's card (docs/key-lock.md "Wrong PINs"): how many PINs in
 * a row were wrong, and whether the key was wiped. An attempt is counted on disk (written to a
 * temporary file, fsynced, renamed) BEFORE the PIN is checked, and taken back only after it
 * opened the key, so cutting the power during a check never gives a free guess.
 * Must never: check a PIN whose attempt is not on disk, or read a damaged counter as zero.
 */
import { ConfigError } from "../../core/errors.ts";
import { platform } from "../../platform/index.ts";

export interface AttemptState {
  /** Wrong PINs in a row (an attempt in progress counts). */
  readonly failures: number;
  /** The sealed key was destroyed after too many wrong PINs. */
  readonly wiped: boolean;
}

export class AttemptCounter {
  private constructor(
    readonly path: string,
    private current: AttemptState,
  ) {}

  static async open(path: string): Promise<AttemptCounter> {
    let text: string;
    try {
      text = new TextDecoder().decode(await platform.readFile(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT")
        return new AttemptCounter(path, { failures: 0, wiped: false });
      throw new ConfigError(
        `cannot read the PIN attempt counter ${path} (${(e as NodeJS.ErrnoException).code})`,
        1,
      );
    }
    const m = /^failures=(\d{1,6}) wiped=(0|1)\n$/.exec(text);
    // A damaged counter is not a fresh one: it counts as used up, which only the owner (with
    // gpg-setup on the device) can undo.
    if (!m) return new AttemptCounter(path, { failures: Number.MAX_SAFE_INTEGER, wiped: false });
    return new AttemptCounter(path, { failures: Number(m[1]), wiped: m[2] === "1" });
  }

  get state(): AttemptState {
    return this.current;
  }

  private async save(s: AttemptState): Promise<void> {
    await platform.writeFileAtomic(
      this.path,
      `failures=${Math.min(s.failures, 999_999)} wiped=${s.wiped ? 1 : 0}\n`,
      0o600,
    );
    this.current = s;
  }

  /** Counts one attempt on disk; returns the failures including it. */
  async begin(): Promise<number> {
    const next = { ...this.current, failures: this.current.failures + 1 };
    await this.save(next);
    return next.failures;
  }

  /** The PIN was right: the count goes back to zero. */
  succeeded(): Promise<void> {
    return this.save({ failures: 0, wiped: false });
  }

  markWiped(): Promise<void> {
    return this.save({ failures: this.current.failures, wiped: true });
  }

  /** gpg-setup --pin made a new sealed key. */
  reset(): Promise<void> {
    return this.save({ failures: 0, wiped: false });
  }
}
