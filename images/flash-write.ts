/**
 * Writes an image to a disk (or a regular file) and verifies it, in the order that keeps a
 * half-finished target harmless:
 *   1. blank the first 4 KiB (MBR and GPT header) and sync: from now on the target neither boots
 *      nor mounts as a stale or half-written disk (Linux reads no GPT without a protective MBR);
 *   2. write the rest in 4 MiB chunks, hashing each (sha256), syncing every 64 MiB;
 *   3. verify every chunk by reading it back around the page cache (O_DIRECT where the target
 *      supports it; a regular file on a filesystem without O_DIRECT is verified from the cache,
 *      reported as "page-cache");
 *   4. only then write the first 4 KiB, sync, and verify them too (rpi-imager's order).
 * Block devices are opened with O_EXCL: Linux refuses that while anything is mounted from them.
 * Stops cleanly between chunks when the signal aborts, after a sync, and says what state the
 * target is in. Hooks let tests observe the write order and corrupt the target before verify.
 * Must never: write the first block before everything else is verified.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

export const CHUNK_SIZE = 4 * 1024 * 1024;
export const HEAD_SIZE = 4096;
export const SYNC_EVERY = 64 * 1024 * 1024;

export type WriteEventKind = "wipe" | "data" | "head";
export interface WriteEvent {
  kind: WriteEventKind;
  offset: number;
  length: number;
}

export interface WriteHooks {
  /** After each write to the target, in order (awaited: a test may slow the write down). */
  onWrite?(event: WriteEvent): void | Promise<void>;
  /** After all but the first block is written and synced, before verification. */
  beforeVerify?(target: string): void | Promise<void>;
}

export interface Progress {
  phase: "write" | "verify";
  done: number;
  total: number;
}

export interface WriteOptions {
  image: string;
  target: string;
  kind: "block" | "file";
  /** sha256 hex the image must have; checked before the first block is written. */
  expectedSha256?: string;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  hooks?: WriteHooks;
}

export type WriteOutcome =
  | { status: "done"; bytes: number; sha256: string; verify: "direct" | "page-cache" }
  | { status: "interrupted"; phase: "write" | "verify"; written: number; total: number }
  | { status: "verify-failed"; offset: number; length: number }
  | { status: "checksum-mismatch"; expected: string; actual: string };

/** An I/O failure, with a message for the operator. */
export class FlashWriteError extends Error {
  override readonly name = "FlashWriteError";
}

const code = (e: unknown) => (e as { code?: string }).code ?? String(e);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function openError(target: string, kind: "block" | "file", e: unknown): FlashWriteError {
  const c = code(e);
  if (c === "EBUSY") {
    return new FlashWriteError(
      `${target} is busy: something has it mounted or open (the exclusive open was refused)`,
    );
  }
  if (c === "EACCES" || c === "EPERM") {
    return new FlashWriteError(`permission denied opening ${target}: run the flasher as root (sudo)`);
  }
  if (c === "EROFS") return new FlashWriteError(`${target} is read-only`);
  if (c === "ENOENT")
    return new FlashWriteError(`${target} does not exist${kind === "block" ? " (card removed?)" : ""}`);
  return new FlashWriteError(`cannot open ${target}: ${c}`);
}

async function readFull(fh: FileHandle, buf: Uint8Array, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

async function writeFull(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * A buffer the kernel accepts for O_DIRECT reads from `fh`: probed by reading the first block at
 * increasing offsets into an oversized buffer, since JS cannot see addresses (Bun's large buffers
 * are page-aligned; Node's come from malloc, 16 bytes past a page). Null when none works.
 */
async function alignedBuffer(fh: FileHandle, size: number): Promise<Uint8Array | null> {
  const raw = Buffer.allocUnsafeSlow(size + HEAD_SIZE);
  for (let off = 0; off < HEAD_SIZE; off += 16) {
    try {
      await fh.read(raw, off, HEAD_SIZE, 0);
      return raw.subarray(off, off + size);
    } catch (e) {
      if (code(e) !== "EINVAL") throw e;
    }
  }
  return null;
}

/** A reader around the page cache: O_DIRECT with an aligned buffer, else plain reads. */
async function openVerifier(target: string): Promise<{ fh: FileHandle; buf: Uint8Array; direct: boolean }> {
  const O_DIRECT = constants.O_DIRECT ?? 0;
  if (O_DIRECT) {
    try {
      const fh = await open(target, constants.O_RDONLY | O_DIRECT);
      const buf = await alignedBuffer(fh, CHUNK_SIZE);
      if (buf) return { fh, buf, direct: true };
      await fh.close();
    } catch (e) {
      if (code(e) !== "EINVAL") throw new FlashWriteError(`cannot read back ${target}: ${code(e)}`);
    }
  }
  return {
    fh: await open(target, constants.O_RDONLY),
    buf: Buffer.allocUnsafeSlow(CHUNK_SIZE),
    direct: false,
  };
}

const roundUp = (n: number) => Math.ceil(n / HEAD_SIZE) * HEAD_SIZE;

export async function writeImage(o: WriteOptions): Promise<WriteOutcome> {
  const img = await open(o.image, constants.O_RDONLY).catch((e) => {
    throw new FlashWriteError(`cannot open the image ${o.image}: ${code(e)}`);
  });
  try {
    const total = (await img.stat()).size;
    if (total === 0) throw new FlashWriteError(`the image ${o.image} is empty`);
    const flags =
      o.kind === "block" ? constants.O_WRONLY | constants.O_EXCL : constants.O_WRONLY | constants.O_CREAT;
    const out = await open(o.target, flags, 0o644).catch((e) => {
      throw openError(o.target, o.kind, e);
    });
    try {
      return await run(o, img, out, total);
    } finally {
      await out.close().catch(() => {});
    }
  } finally {
    await img.close().catch(() => {});
  }
}

async function run(o: WriteOptions, img: FileHandle, out: FileHandle, total: number): Promise<WriteOutcome> {
  const head = Math.min(HEAD_SIZE, total);
  const event = async (kind: WriteEventKind, offset: number, length: number) =>
    o.hooks?.onWrite?.({ kind, offset, length });
  const ioError = (what: string, at: number, e: unknown) =>
    new FlashWriteError(
      `${what} error at byte ${at} of ${o.target}: ${code(e)}. The target's first block is blank, so it will not boot; check the card and flash again.`,
    );

  await writeFull(out, new Uint8Array(head), 0).catch((e) => {
    throw ioError("write", 0, e);
  });
  await out.datasync();
  await event("wipe", 0, head);

  const whole = createHash("sha256");
  const hashes: string[] = [];
  let headBytes = new Uint8Array(0);
  const buf = Buffer.allocUnsafeSlow(CHUNK_SIZE);
  let sinceSync = 0;
  for (let off = 0; off < total; off += CHUNK_SIZE) {
    if (o.signal?.aborted) {
      await out.datasync().catch(() => {});
      return { status: "interrupted", phase: "write", written: off, total };
    }
    const len = Math.min(CHUNK_SIZE, total - off);
    if ((await readFull(img, buf, len, off)) !== len)
      throw new FlashWriteError(`the image ${o.image} shrank while reading`);
    const data = buf.subarray(0, len);
    whole.update(data);
    const skip = off === 0 ? head : 0;
    if (off === 0) headBytes = Uint8Array.from(data.subarray(0, head));
    hashes.push(sha(data.subarray(skip)));
    if (len > skip) {
      await writeFull(out, data.subarray(skip), off + skip).catch((e) => {
        throw ioError("write", off, e);
      });
      await event("data", off + skip, len - skip);
    }
    sinceSync += len;
    if (sinceSync >= SYNC_EVERY) {
      await out.datasync();
      sinceSync = 0;
    }
    o.onProgress?.({ phase: "write", done: off + len, total });
  }
  if (o.kind === "file") await out.truncate(total);
  await out.datasync().catch((e) => {
    throw ioError("sync", total, e);
  });
  const actual = whole.digest("hex");
  if (o.expectedSha256 && o.expectedSha256.toLowerCase() !== actual) {
    return { status: "checksum-mismatch", expected: o.expectedSha256.toLowerCase(), actual };
  }

  await o.hooks?.beforeVerify?.(o.target);
  const v = await openVerifier(o.target);
  try {
    for (let i = 0, off = 0; off < total; i++, off += CHUNK_SIZE) {
      if (o.signal?.aborted) return { status: "interrupted", phase: "verify", written: total, total };
      const len = Math.min(CHUNK_SIZE, total - off);
      const want = v.direct ? roundUp(len) : len;
      const got = await readFull(v.fh, v.buf, want, off).catch((e) => {
        throw ioError("read", off, e);
      });
      const skip = off === 0 ? head : 0;
      if (got < len || sha(v.buf.subarray(skip, len)) !== hashes[i]) {
        return { status: "verify-failed", offset: off, length: len };
      }
      o.onProgress?.({ phase: "verify", done: off + len, total });
    }
    await writeFull(out, headBytes, 0).catch((e) => {
      throw ioError("write", 0, e);
    });
    await out.datasync();
    await event("head", 0, head);
    const got = await readFull(v.fh, v.buf, v.direct ? HEAD_SIZE : head, 0);
    if (got < head || sha(v.buf.subarray(0, head)) !== sha(headBytes)) {
      // Blank it again: a target that failed verification must not boot.
      await writeFull(out, new Uint8Array(head), 0).catch(() => {});
      await out.datasync().catch(() => {});
      return { status: "verify-failed", offset: 0, length: head };
    }
  } finally {
    await v.fh.close().catch(() => {});
  }
  return { status: "done", bytes: total, sha256: actual, verify: v.direct ? "direct" : "page-cache" };
}
