/**
 * Strict CBOR decoder for control messages (data model and error codes: see cbor.ts).
 *
 * Peer bytes reach this code before anything else looks at them, so it must never: allocate for a
 * declared length or count before checking it against the remaining input and the limits; recurse
 * deeper than the depth limit; touch an object prototype; throw anything but ProtocolError for bad
 * input; or put peer bytes into an error message.
 * Specs: RFC 8949 §3 (encoding, well-formedness), §4.2.1 (deterministic encoding: preferred
 * arguments, definite lengths, keys sorted bytewise by their encodings), §5.3 (validity: UTF-8,
 * duplicate keys), Appendix F (well-formedness errors).
 */
import { assert, ProtocolError, type ProtocolErrorCode } from "../errors.ts";
import type { CborLimits, CborMap, CborValue } from "./cbor.ts";
import { CBOR_MAX_BYTES, CBOR_MAX_DEPTH, CBOR_MAX_ITEMS } from "./limits.ts";

// fatal: invalid UTF-8 is an error, not U+FFFD. ignoreBOM: a leading U+FEFF is data; stripping it
// would make the decoded string encode to different bytes.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const TWO_32 = 0x1_0000_0000;
/** Short ASCII strings (map keys) are built directly; TextDecoder's fixed cost dominates there. */
const ASCII_FAST_MAX = 32;

class Reader {
  pos = 0;
  constructor(
    readonly b: Uint8Array,
    readonly maxDepth: number,
    readonly maxItems: number,
  ) {}
}

function fail(code: ProtocolErrorCode, detail: string): never {
  throw new ProtocolError(code, detail);
}

/**
 * Decodes exactly one CBOR item that fills `bytes`. Throws ProtocolError on anything outside the
 * strict subset described in cbor.ts; `limits` may tighten or (in tests) widen the defaults.
 */
export function decodeCbor(bytes: Uint8Array, limits?: Partial<CborLimits>): CborValue {
  assert(bytes instanceof Uint8Array, "decodeCbor: input must be a Uint8Array");
  // Before anything else: the size bound is what makes every later bound cheap.
  if (bytes.length > (limits?.maxBytes ?? CBOR_MAX_BYTES)) fail("cbor-limit", "input too large");
  const r = new Reader(bytes, limits?.maxDepth ?? CBOR_MAX_DEPTH, limits?.maxItems ?? CBOR_MAX_ITEMS);
  const value = readItem(r, 0);
  if (r.pos !== bytes.length) fail("cbor-malformed", "trailing bytes after the item");
  return value;
}

function readItem(r: Reader, depth: number): CborValue {
  const b = r.b;
  if (r.pos >= b.length) fail("cbor-malformed", "truncated");
  const ib = b[r.pos++]!;
  const major = ib >> 5;
  const ai = ib & 0x1f;
  if (major === 7) return readSimple(ai);
  // Tags would let a peer pick how its bytes are interpreted; no control message needs one.
  if (major === 6) fail("cbor-malformed", "tags are not accepted");
  if (ai === 31) {
    if (major <= 1) fail("cbor-malformed", "integer with additional information 31");
    fail("cbor-noncanonical", "indefinite length");
  }
  const arg = readArgument(r, ai);
  switch (major) {
    case 0:
      return arg;
    case 1:
      // -1 - n stays a safe integer only while n < 2^53 - 1.
      return typeof arg === "number" && arg < Number.MAX_SAFE_INTEGER ? -1 - arg : -1n - BigInt(arg);
    case 2: {
      const n = checkLength(r, arg);
      const start = r.pos;
      r.pos += n;
      return b.slice(start, r.pos);
    }
    case 3:
      return readText(r, checkLength(r, arg));
    case 4:
      return readArray(r, checkCount(r, arg, 1), depth + 1);
    default:
      return readMap(r, checkCount(r, arg, 2), depth + 1);
  }
}

function readSimple(ai: number): CborValue {
  if (ai === 20) return false;
  if (ai === 21) return true;
  if (ai === 22) return null;
  if (ai === 31) fail("cbor-malformed", "break outside an indefinite-length item");
  // undefined (23), other simple values (<20, 24), floats (25-27), reserved (28-30).
  fail("cbor-malformed", "float, undefined or simple value not accepted");
}

/** The argument of a head whose initial byte is consumed; requires the preferred (shortest) form. */
function readArgument(r: Reader, ai: number): number | bigint {
  if (ai < 24) return ai;
  const b = r.b;
  const p = r.pos;
  if (ai > 27) fail("cbor-malformed", "reserved additional information");
  const size = 1 << (ai - 24);
  if (b.length - p < size) fail("cbor-malformed", "truncated");
  r.pos = p + size;
  let v: number;
  switch (ai) {
    case 24:
      v = b[p]!;
      if (v < 24) fail("cbor-noncanonical", "argument not in shortest form");
      return v;
    case 25:
      v = (b[p]! << 8) | b[p + 1]!;
      if (v < 0x100) fail("cbor-noncanonical", "argument not in shortest form");
      return v;
    case 26:
      v = readU32(b, p);
      if (v < 0x1_0000) fail("cbor-noncanonical", "argument not in shortest form");
      return v;
    default: {
      const hi = readU32(b, p);
      const lo = readU32(b, p + 4);
      if (hi === 0) fail("cbor-noncanonical", "argument not in shortest form");
      // hi < 2^21 keeps the value within 2^53 - 1, exactly representable as a number.
      if (hi < 0x20_0000) return hi * TWO_32 + lo;
      return (BigInt(hi) << 32n) | BigInt(lo);
    }
  }
}

function readU32(b: Uint8Array, p: number): number {
  return b[p]! * 0x100_0000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

/** A string length must fit in what is left of the input; checked before any allocation. */
function checkLength(r: Reader, arg: number | bigint): number {
  if (typeof arg !== "number" || arg > r.b.length - r.pos) fail("cbor-malformed", "length beyond input");
  return arg;
}

/** An element count must be within the item limit and fit the input at `minBytes` per element. */
function checkCount(r: Reader, arg: number | bigint, minBytes: number): number {
  if (typeof arg !== "number" || arg > r.maxItems) fail("cbor-limit", "too many items");
  if (arg * minBytes > r.b.length - r.pos) fail("cbor-malformed", "count beyond input");
  return arg;
}

function readText(r: Reader, n: number): string {
  const b = r.b;
  const start = r.pos;
  const end = start + n;
  r.pos = end;
  if (n <= ASCII_FAST_MAX) {
    let s = "";
    let i = start;
    for (; i < end; i++) {
      const c = b[i]!;
      if (c >= 0x80) break;
      s += String.fromCharCode(c);
    }
    if (i === end) return s;
  }
  try {
    return utf8.decode(b.subarray(start, end));
  } catch {
    return fail("cbor-malformed", "invalid UTF-8");
  }
}

function readArray(r: Reader, n: number, depth: number): CborValue[] {
  if (depth > r.maxDepth) fail("cbor-limit", "nesting too deep");
  const out: CborValue[] = [];
  for (let i = 0; i < n; i++) out.push(readItem(r, depth));
  return out;
}

function readMap(r: Reader, n: number, depth: number): CborMap {
  if (depth > r.maxDepth) fail("cbor-limit", "nesting too deep");
  const b = r.b;
  // Null prototype: every key, `__proto__` included, becomes an ordinary own property.
  const out = Object.create(null) as CborMap;
  let prevStart = 0;
  let prevEnd = 0;
  for (let i = 0; i < n; i++) {
    const keyStart = r.pos;
    if (keyStart >= b.length) fail("cbor-malformed", "truncated");
    const ib = b[r.pos++]!;
    if (ib >> 5 !== 3) fail("cbor-malformed", "map key is not a text string");
    if ((ib & 0x1f) === 31) fail("cbor-noncanonical", "indefinite length");
    const key = readText(r, checkLength(r, readArgument(r, ib & 0x1f)));
    // §4.2.1: keys sorted by the bytewise order of their (already canonical) encodings. Checking
    // against the previous key alone also finds every duplicate: in a sorted map they are adjacent.
    if (i > 0) {
      const order = compareSpans(b, prevStart, prevEnd, keyStart, r.pos);
      if (order === 0) fail("cbor-malformed", "duplicate map key");
      if (order > 0) fail("cbor-noncanonical", "map keys not in canonical order");
    }
    prevStart = keyStart;
    prevEnd = r.pos;
    out[key] = readItem(r, depth);
  }
  return out;
}

function compareSpans(b: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const aLen = aEnd - aStart;
  const bLen = bEnd - bStart;
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = b[aStart + i]! - b[bStart + i]!;
    if (d !== 0) return d;
  }
  return aLen - bLen;
}
