/**
 * The IK message-1 timestamp (DESIGN.md "Reconnect"): strictly increasing across every
 * handshake this host key ever sends, daemon restarts and clock steps included. Each value is
 * max(now in µs, last + 1), and it is on disk (atomically) before it is used, so a crash can
 * never make the next value repeat one an agent has already seen.
 * Must never: hand out a value that is not persisted, or two equal values (calls are serialised).
 */
import { ConfigError } from "../../core/errors.ts";
import { platform } from "../../platform/index.ts";

export class TimestampSource {
  private last: bigint | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly path: string) {}

  next(): Promise<bigint> {
    const result = this.chain.then(() => this.advance());
    this.chain = result.catch(() => {});
    return result;
  }

  private async advance(): Promise<bigint> {
    if (this.last === null) this.last = await this.load();
    const now = BigInt(platform.now()) * 1000n;
    const value = now > this.last ? now : this.last + 1n;
    await platform.writeFileAtomic(this.path, `${value}\n`, 0o600);
    this.last = value;
    return value;
  }

  private async load(): Promise<bigint> {
    let bytes: Uint8Array;
    try {
      bytes = await platform.readFile(this.path);
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
