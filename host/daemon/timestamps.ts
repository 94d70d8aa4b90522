/**
 * The IK message-1 timestamp (DESIGN.md "Reconnect"): strictly increasing across every
 * handshake this host key ever sends, daemon restarts and clock steps included. Each value is
 * max(now in µs, last + 1): a clock that jumped back (or a file from a clock that ran ahead)
 * continues from last + 1, never below. Each value is on disk durably (temp file, fsync,
 * rename, directory fsync: platform.writeFileAtomic) before next() hands it out, and the caller
 * sends it only after that (host/daemon/remote-link.ts), so a daemon killed right after sending
 * restarts above it and never repeats a value an agent has already seen.
 * Must never: hand out a value that is not persisted, or two equal values (calls are serialised);
 * a failed write hands out nothing.
 */
import { ConfigError } from "../../core/errors.ts";
import { platform } from "../../platform/index.ts";

/** What the source touches; tests inject their own to check the order of writes and uses. */
export interface TimestampDeps {
  /** Durable and atomic: resolves only once the new content survives a crash. */
  writeFileAtomic(path: string, data: string, mode: number): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  /** Wall clock, ms since the epoch. */
  now(): number;
}

const PLATFORM_DEPS: TimestampDeps = {
  writeFileAtomic: (path, data, mode) => platform.writeFileAtomic(path, data, mode),
  readFile: (path) => platform.readFile(path),
  now: () => platform.now(),
};

export class TimestampSource {
  private last: bigint | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly deps: TimestampDeps = PLATFORM_DEPS,
  ) {}

  next(): Promise<bigint> {
    const result = this.chain.then(() => this.advance());
    this.chain = result.catch(() => {});
    return result;
  }

  private async advance(): Promise<bigint> {
    if (this.last === null) this.last = await this.load();
    const now = BigInt(Math.floor(this.deps.now())) * 1000n;
    const value = now > this.last ? now : this.last + 1n;
    await this.deps.writeFileAtomic(this.path, `${value}\n`, 0o600);
    this.last = value;
    return value;
  }

  private async load(): Promise<bigint> {
    let bytes: Uint8Array;
    try {
      bytes = await this.deps.readFile(this.path);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return 0n;
      throw e;
    }
    const text = new TextDecoder().decode(bytes).trim();
    if (!/^\d{1,20}$/.test(text)) {
      throw new ConfigError(
        `${this.path} does not hold a timestamp. Remove it only if the clock is right: agents refuse ` +
          "a reconnect whose timestamp is not newer than the last one they saw.",
      );
    }
    return BigInt(text);
  }
}
