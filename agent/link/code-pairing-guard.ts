/**
 * The device's limit on pairing by 6-digit code (docs/threat-model-pairing.md). Commit, then
 * reveal gives a man in the middle one guess in 10^6 per attempt; this bounds the attempts:
 *
 * - An attempt counts as failed from the moment the device's reveal is about to leave
 *   (attempt(), awaited before the reveal), and is taken back only when the pairing is confirmed
 *   on both ends (succeeded()). So a refused code, a host that abandons after the reveal and an
 *   agent that crashes mid-attempt all count.
 * - After PAIR_CODE_MAX_FAILURES counted attempts code pairing is locked for PAIR_CODE_LOCK_MS
 *   (restarted when a failure is seen later, so it runs from the last failure); then the count
 *   starts again.
 * - code-pairing.json (0600, atomic) holds the count and the end of the lock, so an agent
 *   restart does not reset either.
 *
 * Must never: let a reveal out before its count is on disk, allow more than
 * PAIR_CODE_MAX_FAILURES attempts per lock period (the count is taken synchronously, so
 * concurrent handshakes cannot slip past it), or keep a lock longer than PAIR_CODE_LOCK_MS from
 * now when the wall clock went back.
 */
import { join } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import { PairingLockedError } from "../../core/session/handshake.ts";
import { PAIR_CODE_LOCK_MS, PAIR_CODE_MAX_FAILURES } from "../../core/wire/limits.ts";
import { platform } from "../../platform/index.ts";

export const CODE_PAIRING_FILE = "code-pairing.json";

export class CodePairingGuard {
  private failures = 0;
  /** Wall-clock ms (platform.now) when the lock ends; null when not locked. */
  private lockedUntil: number | null = null;
  private writing: Promise<void> = Promise.resolve();

  private constructor(readonly path: string) {}

  static async open(stateDir: string): Promise<CodePairingGuard> {
    const guard = new CodePairingGuard(join(stateDir, CODE_PAIRING_FILE));
    await guard.load();
    return guard;
  }

  /** Minutes (rounded up) until code pairing reopens, or undefined when it is open. */
  lockedMinutes(): number | undefined {
    const now = this.refresh();
    return this.lockedUntil === null ? undefined : Math.max(1, Math.ceil((this.lockedUntil - now) / 60_000));
  }

  /**
   * Counts one attempt as failed, before the reveal; resolves with its number (1..max) once that
   * is on disk. Throws PairingLockedError if code pairing locked meanwhile.
   */
  async attempt(): Promise<number> {
    const now = this.refresh();
    if (this.lockedUntil !== null) throw new PairingLockedError(this.lockedMinutes()!);
    this.failures++;
    if (this.failures >= PAIR_CODE_MAX_FAILURES) this.lockedUntil = now + PAIR_CODE_LOCK_MS;
    const n = this.failures;
    await this.save();
    return n;
  }

  /** The attempt was refused or abandoned. Returns the minutes locked, if this locked it. */
  async failed(): Promise<number | undefined> {
    const now = this.refresh();
    if (this.failures < PAIR_CODE_MAX_FAILURES) return undefined;
    this.lockedUntil = now + PAIR_CODE_LOCK_MS;
    await this.save();
    return this.lockedMinutes();
  }

  /**
   * The pairing was confirmed on both ends: its own attempt is not a failure. Only that one is
   * given back: attempts an attacker ran beside it stay counted. The lock goes only if it was this
   * attempt that reached the limit (attempts stop once locked, so the others alone are below it).
   */
  async succeeded(): Promise<void> {
    this.failures = Math.max(0, this.failures - 1);
    if (this.failures < PAIR_CODE_MAX_FAILURES) this.lockedUntil = null;
    await this.save();
  }

  /** Ends a lock that is over, clamps one the clock moved back; returns now. */
  private refresh(): number {
    const now = platform.now();
    if (this.lockedUntil !== null) {
      if (now >= this.lockedUntil) {
        this.lockedUntil = null;
        this.failures = 0;
      } else if (this.lockedUntil - now > PAIR_CODE_LOCK_MS) {
        this.lockedUntil = now + PAIR_CODE_LOCK_MS;
      }
    }
    return now;
  }

  private save(): Promise<void> {
    // Each write snapshots the state when it starts, so it includes every change made before it.
    this.writing = this.writing
      .catch(() => {})
      .then(() => platform.writeFileAtomic(this.path, this.serialize(), 0o600));
    return this.writing;
  }

  private serialize(): string {
    const lockedUntil = this.lockedUntil === null ? null : new Date(this.lockedUntil).toISOString();
    return `${JSON.stringify({ version: 1, failures: this.failures, lockedUntil }, null, 2)}\n`;
  }

  private async load(): Promise<void> {
    const st = await platform.stat(this.path);
    if (!st) return;
    const broken = (what: string) =>
      new ConfigError(
        `${this.path} is damaged (${what}); delete it to reset the code pairing attempts (qubes-air-agent ` +
          "recreates it)",
      );
    if (!st.isFile) throw broken("not a regular file");
    if (st.mode & 0o022) {
      throw new ConfigError(
        `${this.path} is writable by group or others (they could reset the lock). Run: chmod 600 ${this.path}`,
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder().decode(await platform.readFile(this.path)));
    } catch {
      throw broken("not JSON");
    }
    const d = doc as Record<string, unknown>;
    if (!d || typeof d !== "object" || Object.keys(d).sort().join(",") !== "failures,lockedUntil,version")
      throw broken("wrong fields");
    if (d.version !== 1) throw broken("not version 1");
    if (typeof d.failures !== "number" || !Number.isInteger(d.failures) || d.failures < 0)
      throw broken("a bad failure count");
    let until: number | null = null;
    if (d.lockedUntil !== null) {
      until = typeof d.lockedUntil === "string" ? Date.parse(d.lockedUntil) : Number.NaN;
      if (Number.isNaN(until)) throw broken("a bad lockedUntil");
    }
    this.failures = Math.min(d.failures, PAIR_CODE_MAX_FAILURES);
    // A full count always comes with a lock; if the file lost it, the lock starts now.
    if (this.failures >= PAIR_CODE_MAX_FAILURES && until === null) until = platform.now() + PAIR_CODE_LOCK_MS;
    this.lockedUntil = until;
  }
}
