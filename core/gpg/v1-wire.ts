/**
 * split-gpg v1 (`qubes.Gpg`) wire format, exactly as upstream's gpg-client.c / gpg-server.c /
 * multiplex.c speak it (reference/split-gpg.md §1), little-endian as on x86-64 and aarch64:
 *
 *   header  1028 bytes: u32 len, then char command[1024]: a 0 byte, then argv[1..] each
 *           NUL-terminated; len is the offset of the final NUL (< 1024), command[len] == 0.
 *   frames  i32 fd_num, u32 len, then len (<= 4096) bytes. fd_num indexes the direction's fd
 *           list; len 0 = EOF on that stream; fd_num < 0 (server to client only) is the exit
 *           status as -(status + 1).
 *
 * Must never: allocate from a length before checking it, or accept a header that is not exactly
 * 1028 bytes.
 */
import { ByteQueue } from "../byte-queue.ts";
import { ProtocolError } from "../errors.ts";

export const HEADER_SIZE = 1028;
export const COMMAND_MAX_LEN = 1024;
export const FRAME_HEADER_SIZE = 8;
export const FRAME_MAX_DATA = 4096;
/** At most 15 fds per direction (upstream MAX_FDS 16). */
export const MAX_FDS_PER_DIRECTION = 15;

export type V1WireErrorCode =
  | "header-short"
  | "header-too-long"
  | "header-not-terminated"
  | "header-malformed"
  | "frame-too-large"
  | "frame-bad-fd"
  | "frame-truncated";

/** A peer fault in the v1 framing: a ProtocolError "gpg-v1-wire" with a fixed reason only. */
export class V1WireError extends ProtocolError {
  constructor(readonly reason: V1WireErrorCode) {
    super("gpg-v1-wire", reason);
  }
}

/** The raw argument bytes of a header (validation of their text is v1-options' job). */
export function decodeHeader(h: Uint8Array): Uint8Array[] {
  if (h.length !== HEADER_SIZE) throw new V1WireError("header-short");
  const len = new DataView(h.buffer, h.byteOffset, 4).getUint32(0, true);
  if (len >= COMMAND_MAX_LEN) throw new V1WireError("header-too-long");
  const cmd = h.subarray(4);
  if (cmd[len] !== 0) throw new V1WireError("header-not-terminated");
  if (len === 0) return [];
  // The client always writes a 0 byte first; upstream ignores what precedes the first NUL, we
  // refuse it rather than guess.
  if (cmd[0] !== 0) throw new V1WireError("header-malformed");
  const args: Uint8Array[] = [];
  let start = 1;
  for (let i = 1; i <= len; i++) {
    if (cmd[i] === 0) {
      args.push(cmd.slice(start, i));
      start = i + 1;
    }
  }
  return args;
}

/** Builds a header as qubes-gpg-client does (for our client emulator and tests). */
export function encodeHeader(args: readonly Uint8Array[]): Uint8Array {
  const h = new Uint8Array(HEADER_SIZE);
  let len = 1;
  for (const a of args) {
    if (COMMAND_MAX_LEN - len < a.length + 1) throw new RangeError("command line too long");
    h.set(a, 4 + len);
    len += a.length + 1;
  }
  new DataView(h.buffer).setUint32(0, args.length === 0 ? 0 : len - 1, true);
  return h;
}

/** One data frame (len <= 4096; 0 = EOF). */
export function encodeFrame(fdIndex: number, data: Uint8Array): Uint8Array {
  if (data.length > FRAME_MAX_DATA || fdIndex < 0) throw new RangeError("encodeFrame: bad frame");
  const out = new Uint8Array(FRAME_HEADER_SIZE + data.length);
  const v = new DataView(out.buffer);
  v.setInt32(0, fdIndex, true);
  v.setUint32(4, data.length, true);
  out.set(data, FRAME_HEADER_SIZE);
  return out;
}

/** Splits `data` into as many frames as needed, concatenated. */
export function encodeFrames(fdIndex: number, data: Uint8Array): Uint8Array {
  const n = Math.ceil(data.length / FRAME_MAX_DATA);
  const out = new Uint8Array(data.length + n * FRAME_HEADER_SIZE);
  let o = 0;
  for (let i = 0; i < data.length; i += FRAME_MAX_DATA) {
    const f = encodeFrame(fdIndex, data.subarray(i, Math.min(data.length, i + FRAME_MAX_DATA)));
    out.set(f, o);
    o += f.length;
  }
  return out;
}

/** The exit-status frame the server sends after all its outputs reached EOF. */
export function encodeExitFrame(status: number): Uint8Array {
  if (!Number.isInteger(status) || status < 0 || status > 255) throw new RangeError("exit status");
  const out = new Uint8Array(FRAME_HEADER_SIZE);
  new DataView(out.buffer).setInt32(0, -(status + 1), true);
  return out;
}

export type Frame =
  | { readonly kind: "data"; readonly fd: number; readonly data: Uint8Array }
  | { readonly kind: "eof"; readonly fd: number }
  | { readonly kind: "exit"; readonly status: number };

/**
 * Incremental frame decoder for one direction. `fdCount` is the length of that direction's fd
 * list; exit frames are accepted only when `allowExit` (server-to-client). Buffers at most one
 * frame (8 + 4096 bytes) beyond what the caller has taken.
 */
export class FrameReader {
  private readonly held = new ByteQueue();
  private failed: V1WireError | null = null;

  constructor(
    private readonly fdCount: number,
    private readonly allowExit: boolean,
  ) {}

  push(chunk: Uint8Array): void {
    this.held.push(chunk);
  }

  /** Bytes held and not yet returned in a frame. */
  get buffered(): number {
    return this.held.length;
  }

  /**
   * The next whole frame, or null if more bytes are needed. Throws V1WireError (sticky). A
   * frame's data is a view the reader never writes to again.
   */
  next(): Frame | null {
    if (this.failed) throw this.failed;
    const avail = this.held.length;
    if (avail < FRAME_HEADER_SIZE) return null;
    const head = this.held.peek();
    const v = new DataView(head.buffer, head.byteOffset, FRAME_HEADER_SIZE);
    const fd = v.getInt32(0, true);
    const len = v.getUint32(4, true);
    if (len > FRAME_MAX_DATA) return this.fail("frame-too-large");
    if (fd < 0) {
      // -(status+1) for status 0..255; anything else cannot come from a real server.
      if (!this.allowExit || len !== 0 || fd < -256) return this.fail("frame-bad-fd");
      this.held.skip(FRAME_HEADER_SIZE);
      return { kind: "exit", status: -fd - 1 };
    }
    if (fd >= this.fdCount) return this.fail("frame-bad-fd");
    if (avail < FRAME_HEADER_SIZE + len) return null;
    const frame = this.held.take(FRAME_HEADER_SIZE + len);
    return len === 0 ? { kind: "eof", fd } : { kind: "data", fd, data: frame.subarray(FRAME_HEADER_SIZE) };
  }

  /** The stream ended: fine between frames, a fault inside one. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered > 0) this.fail("frame-truncated");
  }

  private fail(code: V1WireErrorCode): never {
    this.failed = new V1WireError(code);
    throw this.failed;
  }
}
