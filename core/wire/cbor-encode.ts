/**
 * Deterministic CBOR encoder for control messages (data model: see cbor.ts).
 *
 * Produces the one encoding decodeCbor accepts: RFC 8949 §4.2.1 core deterministic encoding
 * (preferred arguments, definite lengths, map keys sorted bytewise by their encodings), with the
 * RFC 8949 §3 heads. Values outside the data model, or beyond the limits a peer with the same
 * limits would enforce, are bugs in our own code: it asserts on them and must never silently
 * drop, coerce or replace data (no lone surrogates turned into U+FFFD, no undefined skipped).
 */
import { assert } from "../errors.ts";
import type { CborLimits, CborMap, CborValue } from "./cbor.ts";
import { CBOR_MAX_BYTES, CBOR_MAX_DEPTH, CBOR_MAX_ITEMS } from "./limits.ts";

const utf8 = new TextEncoder();
const TWO_32 = 0x1_0000_0000;
const U64_MAX = (1n << 64n) - 1n;
const NON_ASCII = /[^\x00-\x7f]/;
/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** The scratch buffer is kept between calls up to this size, so encoding does not allocate it. */
const KEEP_SCRATCH_MAX = 64 * 1024;

class Writer {
  buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
}

let scratch: Writer | null = new Writer(1024);

interface Bounds {
  maxDepth: number;
  maxItems: number;
}

/**
 * Encodes `value` deterministically. Asserts (AssertionError) on values outside the data model,
 * on cycles (caught by the depth limit) and on output a decoder with the same `limits` rejects.
 */
export function encodeCbor(value: CborValue, limits?: Partial<CborLimits>): Uint8Array {
  // A getter inside `value` could call us again while the scratch buffer is in use; a nested call
  // then gets its own buffer.
  const w = scratch ?? new Writer(256);
  scratch = null;
  try {
    w.pos = 0;
    const bounds = {
      maxDepth: limits?.maxDepth ?? CBOR_MAX_DEPTH,
      maxItems: limits?.maxItems ?? CBOR_MAX_ITEMS,
    };
    writeValue(w, value, 0, bounds);
    assert(w.pos <= (limits?.maxBytes ?? CBOR_MAX_BYTES), "encodeCbor: encoding exceeds maxBytes");
    return w.buf.slice(0, w.pos);
  } finally {
    // Keep no copy of the message (it may hold pairing or session data) beyond this call.
    w.buf.fill(0, 0, w.pos);
    if (w.buf.length <= KEEP_SCRATCH_MAX) scratch = w;
  }
}

function writeValue(w: Writer, v: unknown, depth: number, bounds: Bounds): void {
  switch (typeof v) {
    case "number":
      assert(Number.isSafeInteger(v), "encodeCbor: numbers must be safe integers (no floats)");
      // -0 >= 0, so it is written as 0.
      if (v >= 0) writeHead(w, 0, v);
      else writeHead(w, 1, -1 - v);
      return;
    case "bigint":
      writeBigInt(w, v);
      return;
    case "string":
      writeText(w, v);
      return;
    case "boolean":
      w.ensure(1);
      w.buf[w.pos++] = v ? 0xf5 : 0xf4;
      return;
    case "object":
      break;
    default:
      assert(false, "encodeCbor: value outside the CBOR data model");
  }
  if (v === null) {
    w.ensure(1);
    w.buf[w.pos++] = 0xf6;
  } else if (v instanceof Uint8Array) {
    writeHead(w, 2, v.length);
    w.ensure(v.length);
    w.buf.set(v, w.pos);
    w.pos += v.length;
  } else if (Array.isArray(v)) {
    assert(depth < bounds.maxDepth, "encodeCbor: nesting too deep (or a cycle)");
    assert(v.length <= bounds.maxItems, "encodeCbor: too many items");
    writeHead(w, 4, v.length);
    // Index loop, not for-of: holes must reach writeValue as undefined and assert.
    for (let i = 0; i < v.length; i++) writeValue(w, v[i], depth + 1, bounds);
  } else {
    const proto = Object.getPrototypeOf(v);
    assert(proto === Object.prototype || proto === null, "encodeCbor: only plain objects encode as maps");
    assert(depth < bounds.maxDepth, "encodeCbor: nesting too deep (or a cycle)");
    assert(Object.getOwnPropertySymbols(v).length === 0, "encodeCbor: symbol keys are not encodable");
    const map = v as CborMap;
    const keys = Object.keys(map);
    assert(keys.length <= bounds.maxItems, "encodeCbor: too many items");
    writeHead(w, 5, keys.length);
    if (keys.every((k) => !NON_ASCII.test(k))) {
      // ASCII: UTF-8 bytes equal the code units, so (length, string order) is the encoded order.
      keys.sort(compareAsciiKeys);
      for (const k of keys) {
        writeText(w, k);
        writeValue(w, map[k], depth + 1, bounds);
      }
    } else {
      const entries = keys.map((k) => ({ k, bytes: encodeUtf8(k) }));
      entries.sort((a, b) => compareEncodedKeys(a.bytes, b.bytes));
      for (const e of entries) {
        writeUtf8(w, e.bytes);
        writeValue(w, map[e.k], depth + 1, bounds);
      }
    }
  }
}

/** A head with the shortest argument encoding (§4.2.1 preferred serialization). */
function writeHead(w: Writer, major: number, arg: number): void {
  const mt = major << 5;
  w.ensure(9);
  const b = w.buf;
  let p = w.pos;
  if (arg < 24) {
    b[p++] = mt | arg;
  } else if (arg < 0x100) {
    b[p++] = mt | 24;
    b[p++] = arg;
  } else if (arg < 0x1_0000) {
    b[p++] = mt | 25;
    b[p++] = arg >> 8;
    b[p++] = arg;
  } else if (arg < TWO_32) {
    b[p++] = mt | 26;
    p = writeU32(b, p, arg);
  } else {
    b[p++] = mt | 27;
    p = writeU32(b, p, Math.floor(arg / TWO_32));
    p = writeU32(b, p, arg >>> 0);
  }
  w.pos = p;
}

function writeU32(b: Uint8Array, p: number, v: number): number {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
  return p + 4;
}

function writeBigInt(w: Writer, v: bigint): void {
  const major = v >= 0n ? 0 : 1;
  const n = major === 0 ? v : -1n - v;
  assert(n <= U64_MAX, "encodeCbor: integer outside the 64-bit range");
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) {
    writeHead(w, major, Number(n));
    return;
  }
  w.ensure(9);
  w.buf[w.pos] = (major << 5) | 27;
  writeU32(w.buf, w.pos + 1, Number(n >> 32n));
  writeU32(w.buf, w.pos + 5, Number(n & 0xffff_ffffn));
  w.pos += 9;
}

function writeText(w: Writer, s: string): void {
  // Optimistic ASCII path: the byte length is the string length, so the head goes first and the
  // characters are copied in place; on the first non-ASCII unit we rewind and take the slow path.
  const start = w.pos;
  writeHead(w, 3, s.length);
  w.ensure(s.length);
  const b = w.buf;
  let p = w.pos;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      w.pos = start;
      writeUtf8(w, encodeUtf8(s));
      return;
    }
    b[p++] = c;
  }
  w.pos = p;
}

function encodeUtf8(s: string): Uint8Array {
  assert(!LONE_SURROGATE.test(s), "encodeCbor: string is not well-formed UTF-16");
  return utf8.encode(s);
}

function writeUtf8(w: Writer, bytes: Uint8Array): void {
  writeHead(w, 3, bytes.length);
  w.ensure(bytes.length);
  w.buf.set(bytes, w.pos);
  w.pos += bytes.length;
}

function compareAsciiKeys(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Encoded text keys order by length first (the head grows with it), then bytewise. */
function compareEncodedKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return 0;
}
