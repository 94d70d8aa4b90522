/**
 * The `qubes.Filecopy` receiver (qfile-unpacker; reference/qfile.md §3): reads a qfile stream
 * from `source`, creates the entries under `opts.dir`, and writes exactly one reply to `sink`.
 *
 * How it stays inside `dir` without chroot or openat (Node has neither):
 * - Every parent is opened one component at a time with O_DIRECTORY|O_NOFOLLOW, so a symlink or
 *   a file as a parent is ENOTDIR, and the next component is resolved against that open directory
 *   through `/proc/self/fd/N/` (the kernel follows that magic link to the directory it holds, as
 *   openat would). Without a usable /proc it falls back to real paths, each component still
 *   opened with O_NOFOLLOW (then a concurrent local rename could race us; the peer cannot).
 * - A file is written to `.qfile-<random>.part` (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), given its
 *   mode and times, synced, then published with link(2), which never overwrites (EEXIST) and
 *   never follows a symlink at the final name; the temporary name is then unlinked. On any error
 *   or EOF it is removed before the reply, so nothing half-written is ever left behind.
 * - Modes: `mode & 0o1777`. Upstream keeps setuid/setgid (its files land on a nosuid bind mount);
 *   we run without that mount, so we strip them.
 * - Times: nsec > 999999999 is EINVAL (upstream aborts without a reply). Times are set through
 *   libuv, in double-precision seconds: sub-microsecond parts may be rounded.
 * Stops at the first error: the reply carries the errno and the name upstream would report.
 * Limits (the agent's qubes.Filecopy sets them, core/qrexec/services.ts FILECOPY_LIMITS): bytes
 * and entries per stream (EDQUOT), and `reserve`, asked before each entry takes space, which
 * refuses (ENOSPC) when it would eat into the free space the device keeps for its state;
 * `stoppedBy` in the result says which limit ended the stream.
 */
import { randomBytes } from "node:crypto";
import { constants as FS } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as fsp from "node:fs/promises";
import { constants as OS } from "node:os";
import { dirname } from "node:path";
import { assert } from "../core/errors.ts";
import {
  EDQUOT,
  EEXIST,
  EINVAL,
  EIO,
  ENOSPC,
  encodeResult,
  type FileHeader,
  MAX_FILE_LEN,
  PROGRESS_NOTIFY_DELTA,
  QfileDecoder,
  QfileError,
  type QfileEvent,
} from "../core/qrexec/qfile.ts";
import { unpackerNameFlags, validateFileName, validateSymlink } from "../core/qrexec/qfile-names.ts";
import type { ByteSink, ByteSource } from "../transport/transport.ts";

export interface UnpackOptions {
  /** The final directory, e.g. ~/QubesIncoming/<source>; it and its parent are made 0700. */
  dir: string;
  /** `qubes.Filecopy+allow-all-names`: any byte but NUL and `/` in names. */
  allowAllNames?: boolean;
  /** EDQUOT beyond this many bytes (0/undefined: none, as qfile-unpacker). */
  maxBytes?: number | bigint;
  /** EDQUOT beyond this many entries (0/undefined: none). */
  maxFiles?: number;
  /** fsync each file before publishing it (default true; upstream does one syncfs at the end). */
  sync?: boolean;
  /** Called with the data bytes received so far, every 15 MB and at the end. */
  onProgress?(bytes: number): void;
  /**
   * The writer's pid, put in temporary names (`.qfile-<pid>-<hex>.part`) so that a later run can
   * tell a leftover of a killed process from a live one's file (host/cli/stale-parts.ts).
   * Absent: `.qfile-<hex>.part` (the device, which sweeps them at start-up).
   */
  tempOwner?: number;
  /**
   * Asked before an entry takes `bytes` of space in `dir` (its own directory, created): a release
   * function (called once the entry is on disk or dropped), or null to stop with ENOSPC.
   */
  reserve?(dir: string, bytes: bigint): Promise<(() => void) | null>;
}

/** Which of the options' limits ended the stream. */
export type UnpackLimit = "bytes" | "files" | "space";

export interface UnpackResult {
  /** 0 or the errno sent in the reply. */
  code: number;
  /** CRC-32 of every byte consumed. */
  crc: number;
  /** The reply's "last name" (null: the reply had no ext). */
  lastName: Uint8Array | null;
  /** Set when a limit of the options (not the filesystem) ended the stream. */
  stoppedBy?: UnpackLimit;
}

/** What a directory or a link is charged against the reserve (one block, as most filesystems). */
const ENTRY_OVERHEAD = 4096n;
const DIR_OPEN = FS.O_RDONLY | FS.O_DIRECTORY | FS.O_NOFOLLOW;
const TEMP_OPEN = FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW;
const SLASH = Buffer.from("/");
const ERRNO = OS.errno as Record<string, number | undefined>;

function errnoOf(e: unknown): number {
  const code = (e as { code?: unknown } | null)?.code;
  const n = typeof code === "string" ? ERRNO[code] : undefined;
  return n ?? EIO;
}

/** Runs an fs call; its failure becomes a QfileError(errno, lastName). */
async function fsOp<T>(p: Promise<T>, lastName: Uint8Array): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw new QfileError(errnoOf(e), lastName);
  }
}

/** An open directory and the path its children are resolved against. */
interface Dir {
  fh: FileHandle;
  path: Buffer;
}

function at(d: Dir, name: Uint8Array): Buffer {
  return Buffer.concat([d.path, SLASH, name]);
}

function checkNsec(h: FileHeader, name: Uint8Array): void {
  if (h.atimeNsec > 999_999_999 || h.mtimeNsec > 999_999_999) throw new QfileError(EINVAL, name);
}

class Unpacker {
  private readonly dec: QfileDecoder;
  private readonly flags: number;
  private readonly limit: bigint;
  private total = 0n;
  private received = 0;
  private notified = 0;
  private useProc = false;
  private root: Dir | null = null;
  /** Directory handles to close when the current entry is over. */
  private held: FileHandle[] = [];
  /** The unpublished temporary file of the current entry. */
  private temp: { fh: FileHandle; path: Buffer } | null = null;
  /** The reserve taken for the current entry. */
  private reserved: (() => void) | null = null;
  stoppedBy: UnpackLimit | undefined;
  /** EDQUOT came from the format's own file size limit, not from the options. */
  oversize = false;

  constructor(
    private readonly source: ByteSource,
    private readonly opts: UnpackOptions,
  ) {
    this.dec = new QfileDecoder({ maxFiles: opts.maxFiles });
    this.flags = unpackerNameFlags(opts.allowAllNames === true);
    this.limit = BigInt(opts.maxBytes ?? 0);
  }

  get crc(): number {
    return this.dec.crc;
  }

  get lastName(): Uint8Array {
    return this.dec.lastName;
  }

  async openRoot(): Promise<void> {
    const empty = new Uint8Array(0);
    await fsp.mkdir(dirname(this.opts.dir), { mode: 0o700 }).catch(() => {});
    await fsp.mkdir(this.opts.dir, { mode: 0o700 }).catch(() => {});
    const fh = await fsOp(fsp.open(this.opts.dir, FS.O_RDONLY | FS.O_DIRECTORY), empty);
    this.root = { fh, path: Buffer.from(this.opts.dir) };
    try {
      const proc = `/proc/self/fd/${fh.fd}`;
      const [a, b] = await Promise.all([fsp.stat(proc, { bigint: true }), fh.stat({ bigint: true })]);
      this.useProc = a.ino === b.ino && a.dev === b.dev;
      if (this.useProc) this.root.path = Buffer.from(proc);
    } catch {
      this.useProc = false;
    }
  }

  async run(): Promise<void> {
    for (;;) {
      const ev = await this.next();
      if (ev.kind === "done") break;
      assert(ev.kind === "entry", "qfile: entry expected");
      if (ev.type === "file") await this.file(ev.header, ev.name);
      else if (ev.type === "dir") await this.dir(ev.header, ev.name);
      else await this.link(ev.header, ev.name);
      await this.release();
    }
    this.progress(true);
  }

  /** The next decoder event, reading input as needed. A read error counts as EOF. */
  private async next(): Promise<QfileEvent> {
    for (;;) {
      const ev = this.dec.next();
      if (ev) return ev;
      const chunk = await this.source.read().catch(() => null);
      if (chunk === null) {
        this.dec.finish();
        assert(false, "qfile: finish() after done");
      }
      this.dec.push(chunk);
    }
  }

  private validate(name: Uint8Array): void {
    const rc = validateFileName(name, this.flags);
    if (rc !== 0) throw new QfileError(rc, name);
  }

  /** opendir_safe: opens every parent of `name` without following links. */
  private async parent(name: Uint8Array): Promise<{ dir: Dir; last: Uint8Array }> {
    let dir = this.root!;
    let start = 0;
    for (let slash = name.indexOf(0x2f); slash >= 0; slash = name.indexOf(0x2f, start)) {
      const comp = name.subarray(start, slash);
      assert(comp.length > 0 && !(comp.length <= 2 && comp.every((b) => b === 0x2e)), "qfile: bad component");
      const fh = await fsOp(fsp.open(at(dir, comp), DIR_OPEN), comp);
      this.held.push(fh);
      dir = { fh, path: this.useProc ? Buffer.from(`/proc/self/fd/${fh.fd}`) : at(dir, comp) };
      start = slash + 1;
    }
    return { dir, last: name.subarray(start) };
  }

  private async file(h: FileHeader, name: Uint8Array): Promise<void> {
    this.validate(name);
    const { dir, last } = await this.parent(name);
    for (let i = 0; this.temp === null; i++) {
      const owner = this.opts.tempOwner === undefined ? "" : `${this.opts.tempOwner}-`;
      const path = at(dir, Buffer.from(`.qfile-${owner}${randomBytes(8).toString("hex")}.part`));
      try {
        this.temp = { fh: await fsp.open(path, TEMP_OPEN, 0o600), path };
      } catch (e) {
        if (errnoOf(e) !== EEXIST || i >= 8) throw new QfileError(errnoOf(e), name);
      }
    }
    const { fh, path } = this.temp;
    if (h.filelen > MAX_FILE_LEN) {
      this.oversize = true;
      throw new QfileError(EDQUOT, name);
    }
    if (this.limit > 0n && (h.filelen > this.limit || this.total > this.limit - h.filelen))
      this.stop("bytes", EDQUOT, name);
    this.total += h.filelen;
    await this.reserve(h.filelen, name);
    for (let ev = await this.next(); ev.kind === "data"; ev = await this.next()) {
      for (let off = 0; off < ev.bytes.length; ) {
        const { bytesWritten } = await fsOp(fh.write(ev.bytes, off, ev.bytes.length - off), name);
        off += bytesWritten;
      }
      this.received += ev.bytes.length;
      this.progress(false);
    }
    checkNsec(h, name);
    await fsOp(fh.chmod(h.mode & 0o1777), name);
    await fsOp(fh.utimes(h.atime + h.atimeNsec / 1e9, h.mtime + h.mtimeNsec / 1e9), name);
    if (this.opts.sync !== false) await fsOp(fh.sync(), name);
    await fsOp(fsp.link(path, at(dir, last)), name);
    await this.dropTemp();
  }

  private async dir(h: FileHeader, name: Uint8Array): Promise<void> {
    this.validate(name);
    const { dir, last } = await this.parent(name);
    const path = at(dir, last);
    const end = await this.next();
    assert(end.kind === "end", "qfile: end expected");
    await this.reserve(ENTRY_OVERHEAD, name);
    try {
      await fsp.mkdir(path, 0o700);
      return;
    } catch (e) {
      if (errnoOf(e) !== EEXIST) throw new QfileError(errnoOf(e), name);
    }
    // The second header of a directory: apply its mode and times now that its children exist.
    const fh = await fsOp(fsp.open(path, DIR_OPEN), name);
    this.held.push(fh);
    // Upstream adds the size "after the fact" and checks only at the next file; then a stream of
    // second headers could run the total past maxBytes unchecked. It counts against it here.
    const size = (await fsOp(fh.stat({ bigint: true }), name)).size;
    if (this.limit > 0n && (size > this.limit || this.total > this.limit - size))
      this.stop("bytes", EDQUOT, name);
    this.total += size;
    checkNsec(h, name);
    await fsOp(fh.chmod(h.mode & 0o1777), name);
    await fsOp(fh.utimes(h.atime + h.atimeNsec / 1e9, h.mtime + h.mtimeNsec / 1e9), name);
  }

  private async link(h: FileHeader, name: Uint8Array): Promise<void> {
    this.total += h.filelen;
    if (this.limit > 0n && this.total > this.limit) this.stop("bytes", EDQUOT, name);
    await this.reserve(ENTRY_OVERHEAD, name);
    const end = await this.next();
    assert(end.kind === "end" && end.target !== null, "qfile: link target expected");
    const rc = validateSymlink(name, end.target, this.flags);
    if (rc !== 0) throw new QfileError(rc, end.target);
    const { dir, last } = await this.parent(name);
    await fsOp(fsp.symlink(Buffer.from(end.target), at(dir, last)), name);
  }

  private stop(why: UnpackLimit, errno: number, name: Uint8Array): never {
    this.stoppedBy = why;
    throw new QfileError(errno, name);
  }

  /** Takes `bytes` of the reserve for the current entry, or stops with ENOSPC. */
  private async reserve(bytes: bigint, name: Uint8Array): Promise<void> {
    if (!this.opts.reserve) return;
    const release = await this.opts.reserve(this.opts.dir, bytes + ENTRY_OVERHEAD);
    if (release === null) this.stop("space", ENOSPC, name);
    this.reserved = release;
  }

  private progress(final: boolean): void {
    const cb = this.opts.onProgress;
    if (!cb || (!final && this.received - this.notified < PROGRESS_NOTIFY_DELTA)) return;
    this.notified = this.received;
    cb(this.received);
  }

  private async dropTemp(): Promise<void> {
    const t = this.temp;
    if (t === null) return;
    this.temp = null;
    await t.fh.close().catch(() => {});
    await fsp.unlink(t.path).catch(() => {});
  }

  /** Ends the current entry: the temporary file (if unpublished) goes, handles are closed. */
  async release(): Promise<void> {
    await this.dropTemp();
    this.reserved?.();
    this.reserved = null;
    const held = this.held;
    this.held = [];
    for (const fh of held) await fh.close().catch(() => {});
  }

  async close(): Promise<void> {
    await this.release();
    await this.root?.fh.close().catch(() => {});
  }
}

/**
 * Receives one qfile stream into `opts.dir` and replies. Never throws for peer or filesystem
 * faults: they become the reply's code. The sink is half-closed after the reply.
 */
export async function unpackQfile(
  source: ByteSource,
  sink: ByteSink,
  opts: UnpackOptions,
): Promise<UnpackResult> {
  const u = new Unpacker(source, opts);
  let code = 0;
  let lastName: Uint8Array | null = null;
  let bug: unknown = null;
  try {
    await u.openRoot();
    await u.run();
    lastName = u.lastName;
  } catch (e) {
    if (e instanceof QfileError) {
      code = e.errno;
      if (code === EDQUOT && u.stoppedBy === undefined && !u.oversize && opts.maxFiles) u.stoppedBy = "files";
      lastName = e.lastName === null ? null : e.lastName.slice();
    } else {
      // A bug of ours: still one reply and no leftovers, then let it surface.
      [code, lastName, bug] = [EIO, u.lastName.slice(), e];
    }
  } finally {
    await u.close();
  }
  try {
    await sink.write(encodeResult(code, u.crc, lastName));
    await sink.closeWrite();
  } catch {
    // The sender is gone; there is nobody left to tell.
  }
  if (bug !== null) throw bug;
  return { code, crc: u.crc, lastName, ...(u.stoppedBy && code !== 0 ? { stoppedBy: u.stoppedBy } : {}) };
}
