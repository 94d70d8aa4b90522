/**
 * The daemon's log: one line per event on stderr, `qubes-air-agent: EVENT key=value ...`
 * (systemd's journal adds the time). Values are our own words, validated qrexec names, key
 * prefixes and numbers.
 * Must never: write peer bytes (data, undecoded metadata, error text from a peer).
 */
import { writeSync } from "node:fs";
import { formatPublicKey } from "../core/session/key-text.ts";

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export type Log = (event: string, fields?: LogFields) => void;

export function makeLog(write: (line: string) => void = writeStderr): Log {
  return (event, fields = {}) => {
    const parts = [`qubes-air-agent: ${event}`];
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const s = String(v);
      parts.push(`${k}=${/^[^\s"=]*$/.test(s) && s !== "" ? s : JSON.stringify(s)}`);
    }
    write(`${parts.join(" ")}\n`);
  };
}

/**
 * Writes a line to fd 2 at once, so it is out before the next event happens (and before a crash
 * or process.exit); only if fd 2 is a full non-blocking pipe (EAGAIN) is the line queued on
 * process.stderr instead.
 */
function writeStderr(line: string): void {
  try {
    writeSync(2, line);
  } catch {
    process.stderr.write(line);
  }
}

/** `qa-pub:` and the first 8 hex digits: enough to tell hosts apart in a log. */
export function keyPrefix(key: Uint8Array): string {
  return `${formatPublicKey(key).slice(0, "qa-pub:".length + 8)}…`;
}

/** The fixed code of a ProtocolError, or the error's class name (never a message from a peer). */
export function errorCode(error: unknown): string {
  const e = error as { name?: string; code?: unknown } | null;
  if (e?.name === "ProtocolError" && typeof e.code === "string") return e.code;
  if (e?.name === "ChannelResetError") return "channel-reset";
  if (e?.name === "TransportError") return `transport-${typeof e.code === "string" ? e.code : "io"}`;
  return e?.name ?? "error";
}
