/**
 * Assuan building blocks for the split-gpg2 filter (reference/split-gpg.md §2): a bounded line
 * splitter, byte/"binary string" conversion, the percent escapes of D lines and of SETKEYDESC,
 * and the fixed error lines we send.
 * Must never: buffer more than one line's limit of a peer's bytes without a newline.
 */
import { ByteQueue } from "../byte-queue.ts";

/** From assuan.h: a line (without its LF) longer than this is filtered. */
export const ASSUAN_LINELENGTH = 1002;

/** gpg-error codes as split-gpg2 sends them (source GPG agent = 4 << 24). */
const AGENT = 4 << 24;
export const ERR_FILTERED_LINE = `ERR ${AGENT | 1024} Command filtered by split-gpg2.`;
export const ERR_UNKNOWN_IPC_LINE = `ERR ${AGENT | 275} unknown IPC command`;
/** What gpg-agent 2.2 and 2.4 without a card daemon answer to every SCD command. */
export const ERR_NO_SCDAEMON_LINE = `ERR ${AGENT | 119} No SmartCard daemon <GPG Agent>`;
/** gpg-agent's own answer to KEYINFO <keygrip> for a key it does not hold (2.2 and 2.4). */
export const ERR_NOT_FOUND_LINE = `ERR ${AGENT | 27} Not found <GPG Agent>`;
/** gpg-agent's own answer to HAVEKEY <keygrips> when it holds none of them. */
export const ERR_NO_SECKEY_LINE = `ERR ${AGENT | 17} No secret key <GPG Agent>`;
/** gpg-agent 2.4's answer to HAVEKEY --list=N when it holds more than N keys. */
export const ERR_TRUNCATED_LINE = `ERR ${AGENT | 74} Result truncated <GPG Agent>`;
export const ERR_NOT_SUPPORTED_LINE = `ERR ${AGENT | 60} Not supported <GPG Agent>`;
/** Our answer to a denied confirmation (GPG_ERR_CANCELED), so gpg says "Operation cancelled". */
export const ERR_CANCELED_LINE = `ERR ${AGENT | 99} Operation cancelled <GPG Agent>`;

/** Bytes as a string of the same length with one char (U+0000..U+00FF) per byte. */
export function binary(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(bytes.length, i + 8192)));
  }
  return s;
}

/** The inverse of binary(); chars above U+00FF are a bug. */
export function fromBinary(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError("fromBinary: not a byte string");
    out[i] = c;
  }
  return out;
}

/** A line of ASCII text with its LF, ready to write. */
export function line(text: string): Uint8Array {
  return fromBinary(`${text}\n`);
}

export type SplitResult = Uint8Array | "need-more" | "too-long";

/**
 * Splits a byte stream into LF-terminated lines (the LF is not returned). Holds at most `max`
 * bytes of an unfinished line: a longer one is "too-long" as soon as that is certain, and the
 * splitter stays failed. Bytes pushed after complete lines wait until those lines are taken.
 */
export class LineSplitter {
  private readonly held = new ByteQueue();
  /** Held bytes already searched for LF (none there): a line arriving a byte at a time is O(n). */
  private searched = 0;
  private failed = false;

  constructor(private readonly max: number) {}

  push(chunk: Uint8Array): void {
    this.held.push(chunk);
  }

  /** Bytes pushed and not yet returned as a line. */
  get buffered(): number {
    return this.held.length;
  }

  next(): SplitResult {
    if (this.failed) return "too-long";
    const rest = this.held.peek();
    const limit = Math.min(rest.length, this.max + 1);
    const found = rest.subarray(this.searched, limit).indexOf(10);
    if (found < 0) {
      if (rest.length > this.max) {
        this.failed = true;
        return "too-long";
      }
      this.searched = limit;
      return "need-more";
    }
    const lf = this.searched + found;
    this.searched = 0;
    return this.held.take(lf + 1).subarray(0, lf);
  }
}

/** Splits "CMD args" at the first space; args is undefined when there is no space at all. */
export function extractArgs(text: string, sep = " "): [string, string | undefined] {
  const i = text.indexOf(sep);
  return i < 0 ? [text, undefined] : [text.slice(0, i), text.slice(i + 1)];
}

/** Undoes Assuan's D-line escaping as split-gpg2 does: only %XX with upper-case hex. */
export function unescapeData(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x25 && i + 2 < bytes.length && isUpperHex(bytes[i + 1]) && isUpperHex(bytes[i + 2])) {
      out[n++] = (hexValue(bytes[i + 1]!) << 4) | hexValue(bytes[i + 2]!);
      i += 2;
    } else out[n++] = b;
  }
  return out.slice(0, n);
}

/** Escapes data for a D line the way gpg does: only %, CR and LF. */
export function escapeData(bytes: Uint8Array): Uint8Array {
  let extra = 0;
  for (const b of bytes) if (b === 0x25 || b === 0x0d || b === 0x0a) extra += 2;
  const out = new Uint8Array(bytes.length + extra);
  let n = 0;
  for (const b of bytes) {
    if (b === 0x25 || b === 0x0d || b === 0x0a) {
      out[n++] = 0x25;
      out[n++] = HEX_LOWER.charCodeAt(b >> 4);
      out[n++] = HEX_LOWER.charCodeAt(b & 15);
    } else out[n++] = b;
  }
  return out;
}

/**
 * Binary data as Assuan D lines (without LF), escaped as libassuan escapes what it sends: %, CR
 * and LF as %XX with upper-case hex. A line never exceeds ASSUAN_LINELENGTH and an escape is
 * never split across lines.
 */
export function dataLines(bytes: Uint8Array): string[] {
  const lines: string[] = [];
  let cur = "D ";
  for (const b of bytes) {
    const piece =
      b === 0x25 || b === 0x0d || b === 0x0a
        ? `%${HEX_UPPER[b >> 4]}${HEX_UPPER[b & 15]}`
        : String.fromCharCode(b);
    if (cur.length + piece.length > ASSUAN_LINELENGTH) {
      lines.push(cur);
      cur = "D ";
    }
    cur += piece;
  }
  if (cur.length > 2) lines.push(cur);
  return lines;
}

/**
 * The escape split-gpg2 uses for its own SETKEYDESC text: printable ASCII except `+"% ` stays,
 * a space becomes `+`, everything else (newlines, UTF-8 bytes) becomes %xx.
 */
export function percentPlusEscape(bytes: Uint8Array): string {
  let s = "";
  for (const c of bytes) {
    if (c >= 0x20 && c < 0x7e && c !== 0x2b && c !== 0x22 && c !== 0x25 && c !== 0x20) {
      s += String.fromCharCode(c);
    } else if (c === 0x20) s += "+";
    else s += `%${HEX_LOWER[c >> 4]}${HEX_LOWER[c & 15]}`;
  }
  return s;
}

const HEX_LOWER = "0123456789abcdef";
const HEX_UPPER = "0123456789ABCDEF";

function isUpperHex(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46));
}

function hexValue(b: number): number {
  return b <= 0x39 ? b - 0x30 : b - 0x41 + 10;
}

const INT_RE = /^[1-9][0-9]*$/;

/**
 * split-gpg2's sanitize_int: 1..len(str(max)) decimal digits, no leading zero, within
 * [min, max]; anything else is null.
 */
export function sanitizeInt(text: string, min: number, max: number): number | null {
  if (text.length < 1 || text.length > String(max).length || !INT_RE.test(text)) return null;
  const n = Number(text);
  return n >= min && n <= max ? n : null;
}
