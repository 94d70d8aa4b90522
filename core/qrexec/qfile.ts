/**
 * The `qubes.Filecopy` wire format (reference/qfile.md §1-§2), byte-compatible with upstream
 * qfile-agent / qfile-unpacker: 32-byte little-endian `file_header`s, each followed by a name and
 * a payload, an all-zero end marker, and one reply (`result_header` + optional ext) back.
 *
 * QfileDecoder is pull-based: the caller pushes bytes and asks for one event at a time, and the
 * decoder consumes only the bytes that event needs. So the receiver can stop at its first error
 * and the CRC covers exactly what upstream would have consumed (complete headers, names and
 * targets; data bytes as they arrive). Lengths are checked before anything is buffered: a name
 * or link target is at most 16383 bytes, file data is never buffered at all.
 * Must never: put peer bytes into an error message (they travel as QfileError.lastName).
 */
import { assert, ProtocolError, type ProtocolErrorCode } from "../errors.ts";
import { EILSEQ, EINVAL, ENOLINK, sanitizeNameForDisplay } from "./qfile-names.ts";

export { EILSEQ, EINVAL, ENOLINK };
export const ENOENT = 2;
export const EEXIST = 17;
export const ENOTDIR = 20;
export const ENAMETOOLONG = 36;
export const EREMOTEIO = 121;
export const EDQUOT = 122;
/**
 * Linux errno values a receiver reports for a local failure (the reply carries Linux numbers,
 * as upstream's qfile-unpacker does); worded below so no one is shown "error 28".
 */
const EPERM = 1;
export const EIO = 5;
const EACCES = 13;
const EISDIR = 21;
const EMFILE = 24;
const EFBIG = 27;
export const ENOSPC = 28;
const EROFS = 30;
const ENOTEMPTY = 39;
/** "EOF inside a name, data or target"; the sender is expected to have reported why. */
export const LEGAL_EOF = 31415926;

export const FILE_HEADER_SIZE = 32;
export const RESULT_HEADER_SIZE = 16;
/** MAX_PATH_LENGTH: names and link targets are at most this minus one (the NUL) bytes. */
export const MAX_PATH_LENGTH = 16384;
export const MAX_NAME_BYTES = MAX_PATH_LENGTH - 1;
/** qfile-agent refreshes its progress display every this many bytes. */
export const PROGRESS_NOTIFY_DELTA = 15_000_000;
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
/** Largest filelen a receiver accepts for a regular file (LLONG_MAX). */
export const MAX_FILE_LEN = (1n << 63n) - 1n;

export interface FileHeader {
  namelen: number;
  /** Full st_mode (type and permission bits). */
  mode: number;
  filelen: bigint;
  atime: number;
  atimeNsec: number;
  mtime: number;
  mtimeNsec: number;
}

export function encodeFileHeader(h: FileHeader, out = new Uint8Array(FILE_HEADER_SIZE)): Uint8Array {
  const v = new DataView(out.buffer, out.byteOffset, FILE_HEADER_SIZE);
  v.setUint32(0, h.namelen, true);
  v.setUint32(4, h.mode, true);
  v.setBigUint64(8, BigInt.asUintN(64, h.filelen), true);
  v.setUint32(16, h.atime >>> 0, true);
  v.setUint32(20, h.atimeNsec >>> 0, true);
  v.setUint32(24, h.mtime >>> 0, true);
  v.setUint32(28, h.mtimeNsec >>> 0, true);
  return out;
}

export function decodeFileHeader(b: Uint8Array): FileHeader {
  assert(b.length >= FILE_HEADER_SIZE, "decodeFileHeader: short buffer");
  const v = new DataView(b.buffer, b.byteOffset, FILE_HEADER_SIZE);
  return {
    namelen: v.getUint32(0, true),
    mode: v.getUint32(4, true),
    filelen: v.getBigUint64(8, true),
    atime: v.getUint32(16, true),
    atimeNsec: v.getUint32(20, true),
    mtime: v.getUint32(24, true),
    mtimeNsec: v.getUint32(28, true),
  };
}

/**
 * The receiver's one reply: `{code, 0, crc as u64}`, then `{len, name}` unless lastName is null
 * (upstream omits the ext after a namelen overflow or EOF inside a name).
 */
export function encodeResult(code: number, crc: number, lastName: Uint8Array | null): Uint8Array {
  const ext = lastName === null ? 0 : 4 + lastName.length;
  const out = new Uint8Array(RESULT_HEADER_SIZE + ext);
  const v = new DataView(out.buffer);
  v.setUint32(0, code >>> 0, true);
  v.setUint32(8, crc >>> 0, true);
  if (lastName !== null) {
    v.setUint32(16, lastName.length, true);
    out.set(lastName, 20);
  }
  return out;
}

/** The 16-byte result_header. `crc` stays a u64: a sender compares all 64 bits. */
export function decodeResultHeader(b: Uint8Array): { code: number; crc: bigint } {
  assert(b.length >= RESULT_HEADER_SIZE, "decodeResultHeader: short buffer");
  const v = new DataView(b.buffer, b.byteOffset, RESULT_HEADER_SIZE);
  return { code: v.getUint32(0, true), crc: v.getBigUint64(8, true) };
}

const CRC_TABLE = new Uint32Array(8 * 256);
for (let b = 0; b < 256; b++) {
  let c = b;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  CRC_TABLE[b] = c >>> 0;
}
for (let i = 256; i < 8 * 256; i++) {
  const p = CRC_TABLE[i - 256]!;
  CRC_TABLE[i] = (p >>> 8) ^ CRC_TABLE[p & 0xff]!;
}

/**
 * zlib CRC-32 (reflected 0xEDB88320, init and final XOR 0xFFFFFFFF), slicing-by-8. Incremental:
 * crc32(b, crc32(a)) === crc32(a ‖ b); crc32("123456789") === 0xCBF43926. Unsigned result.
 */
export function crc32(data: Uint8Array, crc = 0): number {
  const T = CRC_TABLE;
  let c = ~crc;
  let i = 0;
  for (const end = data.length - 7; i < end; i += 8) {
    const lo = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    const hi = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
    c =
      T[1792 + (lo & 0xff)]! ^
      T[1536 + ((lo >>> 8) & 0xff)]! ^
      T[1280 + ((lo >>> 16) & 0xff)]! ^
      T[1024 + (lo >>> 24)]! ^
      T[768 + (hi & 0xff)]! ^
      T[512 + ((hi >>> 8) & 0xff)]! ^
      T[256 + ((hi >>> 16) & 0xff)]! ^
      T[hi >>> 24]!;
  }
  for (; i < data.length; i++) c = (c >>> 8) ^ T[(c ^ data[i]!) & 0xff]!;
  return ~c >>> 0;
}

const WORDING: Record<number, string> = {
  [EILSEQ]: "forbidden character in file or link target",
  [ENOLINK]: "unsafe symbolic link",
  [EINVAL]: "corrupted data (invalid entry)",
  [ENOENT]: "no such file or directory",
  [EEXIST]: "file already exists",
  [ENOTDIR]: "not a directory",
  [ENAMETOOLONG]: "file name too long",
  [EDQUOT]: "disk quota exceeded",
  [EPERM]: "operation not permitted",
  [EIO]: "input/output error on the receiving side",
  [EACCES]: "permission denied",
  [EISDIR]: "is a directory",
  [EMFILE]: "too many open files on the receiving side",
  [EFBIG]: "file too large for the receiving file system",
  [ENOSPC]: "no space left on the receiving device",
  [EROFS]: "the receiving file system is read-only",
  [ENOTEMPTY]: "directory not empty",
  [EREMOTEIO]: "no end of transfer marker",
  [LEGAL_EOF]: "unexpected end of data",
};

/**
 * One-line wording for a qfile error code (our own text; `lastName` shown sanitised). A code
 * without wording here is said with `systemWords` (the OS's text for it) when given.
 */
export function qfileErrorMessage(
  code: number,
  lastName: Uint8Array | null = null,
  systemWords: string | null = null,
): string {
  const what =
    WORDING[code] ??
    (systemWords ? `the receiver failed: ${systemWords}` : `the receiver failed (errno ${code})`);
  const name = lastName && lastName.length > 0 ? `; last file: "${sanitizeNameForDisplay(lastName)}"` : "";
  return `File copy: ${what}${name}`;
}

/**
 * A receiver-side refusal: `errno` goes into the reply, `lastName` into its ext (null: no ext).
 * The message is fixed wording; lastName is peer bytes and never part of it.
 */
export class QfileError extends ProtocolError {
  constructor(
    readonly errno: number,
    readonly lastName: Uint8Array | null,
  ) {
    const code: ProtocolErrorCode =
      errno === LEGAL_EOF || errno === EREMOTEIO
        ? "frame-truncated"
        : errno === ENAMETOOLONG || errno === EDQUOT
          ? "frame-too-large"
          : "frame-malformed";
    super(code, WORDING[errno] ?? `errno ${errno}`);
  }
}

export type EntryType = "file" | "dir" | "link";

export type QfileEvent =
  /** A header and its name (cut at the first NUL). Payload events follow. */
  | { kind: "entry"; type: EntryType; header: FileHeader; name: Uint8Array }
  /** File data, a view into a pushed chunk (valid until the next push). */
  | { kind: "data"; bytes: Uint8Array }
  /** The entry is complete; `target` (cut at the first NUL) for a link, else null. */
  | { kind: "end"; target: Uint8Array | null }
  /** The end marker: nothing after it is consumed. */
  | { kind: "done" };

type State = "header" | "name" | "data" | "target" | "end" | "done" | "failed";

function cutAtNul(b: Uint8Array): Uint8Array {
  const z = b.indexOf(0);
  return z < 0 ? b : b.subarray(0, z);
}

export interface DecoderOptions {
  /** EDQUOT once more than this many entries arrive (qfile-unpacker: none). */
  maxFiles?: number;
}

/** Streaming decoder for the sender → receiver stream. Errors are QfileError (a ProtocolError). */
export class QfileDecoder {
  private chunks: Uint8Array[] = [];
  private state: State = "header";
  private readonly hdrBuf = new Uint8Array(FILE_HEADER_SIZE);
  private gatherBuf: Uint8Array = this.hdrBuf;
  private gathered = 0;
  private remaining = 0n;
  private header: FileHeader | null = null;
  private files = 0;
  private crcValue = 0;
  /** Name of the last entry whose name was read completely (empty before the first). */
  lastName: Uint8Array = new Uint8Array(0);

  constructor(private readonly options: DecoderOptions = {}) {}

  /** zlib CRC-32 of every byte consumed so far. */
  get crc(): number {
    return this.crcValue;
  }

  get isDone(): boolean {
    return this.state === "done";
  }

  /** Queues input (not copied: the caller must not mutate it). Push only when next() returned
   * null, so at most one chunk is ever queued. */
  push(chunk: Uint8Array): void {
    if (chunk.length > 0) this.chunks.push(chunk);
  }

  /** The next event, or null when more input is needed (or after "done"). */
  next(): QfileEvent | null {
    for (;;) {
      switch (this.state) {
        case "header": {
          if (!this.gather()) return null;
          const h = decodeFileHeader(this.hdrBuf);
          if (h.namelen === 0) {
            this.state = "done";
            return { kind: "done" };
          }
          if (h.namelen > MAX_NAME_BYTES) this.fail(ENAMETOOLONG, null);
          this.files++;
          const max = this.options.maxFiles;
          if (max !== undefined && max > 0 && this.files > max) this.fail(EDQUOT, this.lastName);
          this.header = h;
          this.startGather(new Uint8Array(h.namelen), "name");
          continue;
        }
        case "name": {
          if (!this.gather()) return null;
          const h = this.header!;
          const name = cutAtNul(this.gatherBuf);
          this.lastName = name;
          const t = h.mode & S_IFMT;
          const type: EntryType | null =
            t === S_IFREG ? "file" : t === S_IFDIR ? "dir" : t === S_IFLNK ? "link" : null;
          if (type === null) this.fail(EINVAL, name);
          if (type === "file") {
            this.remaining = h.filelen;
            this.state = "data";
          } else if (type === "link") {
            if (h.filelen > BigInt(MAX_NAME_BYTES)) this.fail(ENAMETOOLONG, name);
            this.startGather(new Uint8Array(Number(h.filelen)), "target");
          } else this.state = "end";
          return { kind: "entry", type, header: h, name };
        }
        case "data": {
          if (this.remaining === 0n) {
            this.state = "end";
            continue;
          }
          const c = this.chunks[0];
          if (c === undefined) return null;
          const n = BigInt(c.length) <= this.remaining ? c.length : Number(this.remaining);
          const bytes = n === c.length ? c : c.subarray(0, n);
          if (n === c.length) this.chunks.shift();
          else this.chunks[0] = c.subarray(n);
          this.remaining -= BigInt(n);
          this.crcValue = crc32(bytes, this.crcValue);
          return { kind: "data", bytes };
        }
        case "target": {
          if (!this.gather()) return null;
          const target = cutAtNul(this.gatherBuf);
          this.startGather(this.hdrBuf, "header");
          return { kind: "end", target };
        }
        case "end":
          this.startGather(this.hdrBuf, "header");
          return { kind: "end", target: null };
        case "done":
          return null;
        case "failed":
          assert(false, "QfileDecoder used after an error");
      }
    }
  }

  /** The input ended (next() returned null): throws the matching QfileError unless done. */
  finish(): void {
    if (this.state === "done") return;
    if (this.state === "header") this.fail(EREMOTEIO, this.lastName);
    if (this.state === "name") this.fail(LEGAL_EOF, null);
    assert(this.state === "data" || this.state === "target", "finish() with an event pending");
    this.fail(LEGAL_EOF, this.lastName);
  }

  private startGather(buf: Uint8Array, state: State): void {
    this.gatherBuf = buf;
    this.gathered = 0;
    this.state = state;
  }

  /** Fills gatherBuf from the queue; true (and CRC updated) once it is complete. */
  private gather(): boolean {
    const buf = this.gatherBuf;
    while (this.gathered < buf.length) {
      const c = this.chunks[0];
      if (c === undefined) return false;
      const n = Math.min(c.length, buf.length - this.gathered);
      buf.set(n === c.length ? c : c.subarray(0, n), this.gathered);
      this.gathered += n;
      if (n === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(n);
    }
    this.crcValue = crc32(buf, this.crcValue);
    return true;
  }

  private fail(errno: number, lastName: Uint8Array | null): never {
    this.state = "failed";
    this.chunks = [];
    throw new QfileError(errno, lastName);
  }
}
