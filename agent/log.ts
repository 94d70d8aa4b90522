/**
 * The daemon's log: one line per event on stderr, `qubes-air-agent: EVENT key=value ...`
 * (systemd's journal adds the time). Values are our own words, validated qrexec names, key
 * prefixes and numbers.
 * Must never: write peer bytes (data, undecoded metadata, error text from a peer).
 */
import { writeSync } from "node:fs";
import { ProtocolError } from "../core/errors.ts";
import { formatPublicKey, type StaticPublicKey } from "../core/session/key-text.ts";
import { ChannelResetError } from "../core/vchan/channel.ts";
import { TransportError } from "../transport/transport.ts";

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
export function keyPrefix(key: StaticPublicKey): string {
  return `${formatPublicKey(key).slice(0, "qa-pub:".length + 8)}…`;
}

/**
 * The fixed code of a ProtocolError, or the error's class name (never a message from a peer).
 * Matched by class: every artefact is one bundle (scripts/build.ts), so each class exists once.
 */
export function errorCode(error: unknown): string {
  if (error instanceof ProtocolError) return error.code;
  if (error instanceof ChannelResetError) return "channel-reset";
  if (error instanceof TransportError) return `transport-${error.code}`;
  return error instanceof Error ? error.name : "error";
}
