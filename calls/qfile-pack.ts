/**
 * The `qubes.Filecopy` sender (qfile-agent / pack.c, plus qubes-fs-tree-check; reference/qfile.md
 * §1, §4): walks the given paths and writes a qfile stream to `sink`, then reads the one reply
 * from `source` and checks its code, then its CRC.
 *
 * - Per argument: its basename is the top-level name (the directory part is not sent). Arguments
 *   "", ".", "..", "/" (and basenames "." or "..") are refused before anything is sent.
 * - Walk with lstat, in readdir order: a directory's header goes before its children and again
 *   after them (so its mode and times land last); symlinks are sent as links, never followed
 *   (or dropped with ignoreSymlinks); sockets, fifos and devices are skipped silently.
 * - A file is sent as exactly its st_size bytes in chunks of at most 64 KiB through one reused
 *   buffer (bounded memory for any size); a file that shrinks meanwhile aborts the transfer.
 * - After each entry, a reply that arrived early (the receiver refused something) stops us.
 * - With `confined` (the agent's export directory): each entry is shown to `check` before
 *   anything of it is read or sent, and directories are walked through their open descriptors
 *   (O_DIRECTORY|O_NOFOLLOW, then /proc/self/fd/N/child; Linux), so a directory swapped for a
 *   link during the walk is never followed; messages name entries by their wire name.
 * Local problems are ConfigError (operator faults), the system error in words and by name; a
 * missing reply or a CRC mismatch is a ProtocolError; a receiver's refusal is returned as `code`
 * with the peer's name sanitised.
 */

import type { BigIntStats } from "node:fs";
import { constants as FS } from "node:fs";
import * as fsp from "node:fs/promises";
import { ConfigError, ProtocolError } from "../core/errors.ts";
import {
  crc32,
  decodeResultHeader,
  encodeFileHeader,
  FILE_HEADER_SIZE,
  MAX_PATH_LENGTH,
  PROGRESS_NOTIFY_DELTA,
  RESULT_HEADER_SIZE,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from "../core/qrexec/qfile.ts";
import {
  isSafeForDisplay,
  NameFlags,
  sanitizeNameForDisplay,
  validateSymlink,
} from "../core/qrexec/qfile-names.ts";
import { errorCodeWords } from "../platform/errno-words.ts";
import type { ByteSink, ByteSource } from "../transport/transport.ts";

export interface PackOptions {
  /** Called with (file and link target bytes sent, total) every 15 MB and at the end. */
  onProgress?(sent: number, total: number): void;
  /** Total for onProgress; computed with totalBytes() when absent and onProgress is set. */
  total?: number;
  /** qvm-copy --ignore-symlinks: leave links out instead of sending them. */
  ignoreSymlinks?: boolean;
  /** Walk by open directory descriptors and ask `check` about every entry (see the header). */
  confined?: Confinement;
}

/** One entry of a confined walk, as lstat saw it, before anything of it is read or sent. */
export interface ConfinedEntry {
  /** The path for I/O on the entry itself (its parent by descriptor; the entry not followed). */
  readonly path: Buffer;
  /** The entry's wire name (relative to its argument's directory). */
  readonly rel: Buffer;
  readonly st: BigIntStats;
}

export interface Confinement {
  /** Throws to refuse the entry (and so the rest of the walk). */
  check(e: ConfinedEntry): Promise<void> | void;
}

interface WalkOptions {
  ignoreSymlinks?: boolean;
  confined?: Confinement;
}

export interface PackResult {
  /** 0, or the receiver's errno (see qfileErrorMessage). */
  code: number;
  /** The reply's last name, shown as qfile-agent shows it (unsafe bytes as `_`). */
  lastName: string;
}

export interface TreeScan {
  /** Bytes of regular files and link targets (qubes-fs-tree-check --machine). */
  totalBytes: number;
  /** False when a name or link target is unsafe for display: use `qubes.Filecopy+allow-all-names`. */
  namesSafe: boolean;
}

const CHUNK = 64 * 1024;
const DIR_FLAGS = FS.O_RDONLY | FS.O_DIRECTORY | FS.O_NOFOLLOW;
const SLASH = Buffer.from("/");

function show(p: Buffer | string): string {
  return JSON.stringify(typeof p === "string" ? p : p.toString("utf8"));
}

/** POSIX dirname/basename of an argument; refuses what qubes-fs-tree-check refuses. */
export function splitArgument(arg: string): { dir: string; base: string } {
  if (arg === "") throw new ConfigError("an empty string is not a valid path");
  if (arg === "." || arg === "..")
    throw new ConfigError(`${show(arg)} is not allowed; try from the parent directory`);
  const s = arg.replace(/\/+$/, "");
  if (s === "") throw new ConfigError("refusing to copy the root directory");
  const i = s.lastIndexOf("/");
  const base = s.slice(i + 1);
  if (base === "." || base === "..")
    throw new ConfigError(`refusing to copy ${show(arg)}: its basename is . or ..`);
  const dir = i < 0 ? "." : s.slice(0, i).replace(/\/+$/, "") || "/";
  return { dir, base };
}

/** A local fs failure in words with its name, "no such file or directory (ENOENT)". */
function inWords(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return e instanceof Error ? e.message : String(e);
  return errorCodeWords(code) ?? code;
}

async function local<T>(p: Promise<T>, what: string, path: Buffer): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw new ConfigError(`cannot ${what} ${show(path)}: ${inWords(e)}`, 1);
  }
}

interface Entry {
  /** Local path, for I/O. */
  path: Buffer;
  /** The path in messages: `path`, or the wire name in a confined walk. */
  label: Buffer;
  /** Name on the wire (relative to the argument's directory). */
  rel: Buffer;
  /** Last component. */
  name: Buffer;
  st: BigIntStats;
  type: number;
}

type Visit = (e: Entry, phase: "pre" | "post") => Promise<void>;

async function walk(path: Buffer, rel: Buffer, name: Buffer, o: WalkOptions, visit: Visit): Promise<void> {
  const label = o.confined ? rel : path;
  const st = await local(fsp.lstat(path, { bigint: true }), "stat", label);
  const type = Number(st.mode) & S_IFMT;
  if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK) return;
  if (type === S_IFLNK && o.ignoreSymlinks) return;
  await o.confined?.check({ path, rel, st });
  const e = { path, label, rel, name, st, type };
  await visit(e, "pre");
  if (type !== S_IFDIR) return;
  const dir = o.confined ? await local(fsp.open(path, DIR_FLAGS), "open directory", label) : null;
  try {
    let at = path;
    if (dir) {
      const now = await local(dir.stat({ bigint: true }), "stat", label);
      if (now.ino !== st.ino || now.dev !== st.dev) throw new ConfigError(`${show(label)} was replaced`, 1);
      at = Buffer.from(`/proc/self/fd/${dir.fd}`);
    }
    const names = await local(fsp.readdir(at, { encoding: "buffer" }), "read directory", label);
    for (const n of names) {
      await walk(Buffer.concat([at, SLASH, n]), Buffer.concat([rel, SLASH, n]), n, o, visit);
    }
  } finally {
    await dir?.close().catch(() => {});
  }
  await visit(e, "post");
}

async function walkAll(paths: string[], o: WalkOptions, visit: Visit): Promise<void> {
  for (const { dir, base } of paths.map(splitArgument)) {
    const b = Buffer.from(base);
    await walk(Buffer.concat([Buffer.from(dir), SLASH, b]), b, b, o, visit);
  }
}

async function readLink(e: Entry): Promise<Buffer> {
  const target = await local(fsp.readlink(e.path, { encoding: "buffer" }), "read link", e.label);
  if (BigInt(target.length) !== e.st.size)
    throw new ConfigError(`link ${show(e.label)} changed while being read`, 1);
  return target;
}

/** qubes-fs-tree-check: totals, refuses unsafe links, tells whether allow-all-names is needed. */
export async function scanTree(paths: string[], opts: WalkOptions = {}): Promise<TreeScan> {
  const out = { totalBytes: 0, namesSafe: true };
  await walkAll(paths, opts, async (e, phase) => {
    if (phase === "post") return;
    if (!isSafeForDisplay(e.name)) out.namesSafe = false;
    if (e.type === S_IFDIR) return;
    out.totalBytes += Number(e.st.size);
    if (e.type !== S_IFLNK) return;
    const target = await readLink(e);
    if (!isSafeForDisplay(target)) out.namesSafe = false;
    const flags = NameFlags.ALLOW_UNSAFE_CHARACTERS | NameFlags.ALLOW_NON_CANONICAL_SYMLINKS;
    if (validateSymlink(e.rel, target, flags) !== 0) {
      throw new ConfigError(`refusing to copy unsafe symbolic link ${show(e.label)}`, 1);
    }
  });
  return out;
}

/** Bytes of regular files and link targets to send (a progress total); checks nothing else. */
export async function totalBytes(paths: string[], opts: WalkOptions = {}): Promise<number> {
  let total = 0;
  await walkAll(paths, opts, async (e, phase) => {
    if (phase === "pre" && e.type !== S_IFDIR) total += Number(e.st.size);
  });
  return total;
}

/** Exactly-n reads from a ByteSource; null at EOF (a read error counts as EOF). */
async function readExactly(source: ByteSource, pending: Uint8Array[], n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const c = pending.shift() ?? (await source.read().catch(() => null));
    if (c === null) return null;
    const k = Math.min(c.length, n - got);
    out.set(c.subarray(0, k), got);
    if (k < c.length) pending.unshift(c.subarray(k));
    got += k;
  }
  return out;
}

interface Reply {
  code: number;
  crc: bigint;
  lastName: Uint8Array;
}

/** wait_for_result: the 16-byte header, then the optional ext (name capped at 16384 bytes). */
async function readReply(source: ByteSource): Promise<Reply> {
  const pending: Uint8Array[] = [];
  const head = await readExactly(source, pending, RESULT_HEADER_SIZE);
  if (head === null) throw new ProtocolError("frame-truncated", "no qfile reply from the receiver");
  const { code, crc } = decodeResultHeader(head);
  const ext = await readExactly(source, pending, 4);
  if (ext === null) return { code, crc, lastName: new Uint8Array(0) };
  const len = Math.min(new DataView(ext.buffer).getUint32(0, true), MAX_PATH_LENGTH);
  return { code, crc, lastName: (await readExactly(source, pending, len)) ?? new Uint8Array(0) };
}

/** Unwinds the walk once the receiver has replied or the sink failed. */
class Stop extends Error {}
const STOPPED = Symbol("stopped");

/**
 * Sends `paths` as one qfile stream (then the end marker, then half-closes `sink`) and checks the
 * reply. Throws ConfigError for local faults (bad argument, unreadable or shrinking file),
 * ProtocolError for no reply or a CRC mismatch; a receiver error is `code`.
 */
export async function packQfile(
  paths: string[],
  sink: ByteSink,
  source: ByteSource,
  opts: PackOptions = {},
): Promise<PackResult> {
  paths.forEach(splitArgument);
  const cb = opts.onProgress;
  const total = opts.total ?? (cb ? await totalBytes(paths, opts) : 0);
  let crc = 0;
  let sent = 0;
  let notified = 0;
  let replied = false;
  const reply = readReply(source);
  const settled = reply.then(
    () => STOPPED,
    () => STOPPED,
  );
  settled.then(() => {
    replied = true;
  });
  // A receiver that refused something stops reading: a write must not wait for it forever.
  const write = async (b: Uint8Array) => {
    crc = crc32(b, crc);
    const w = sink.write(b);
    w.catch(() => {});
    if ((await Promise.race([w, settled]).catch(() => STOPPED)) === STOPPED) throw new Stop();
  };
  const buf = new Uint8Array(CHUNK);
  const sendEntry = async (e: Entry) => {
    const [atime, atimeNsec] = splitTime(e.st.atimeNs);
    const [mtime, mtimeNsec] = splitTime(e.st.mtimeNs);
    const link = e.type === S_IFLNK ? await readLink(e) : null;
    const filelen = e.type === S_IFDIR ? 0n : e.st.size;
    const head = new Uint8Array(FILE_HEADER_SIZE + e.rel.length + 1);
    const h = {
      namelen: e.rel.length + 1,
      mode: Number(e.st.mode),
      filelen,
      atime,
      atimeNsec,
      mtime,
      mtimeNsec,
    };
    encodeFileHeader(h, head);
    head.set(e.rel, FILE_HEADER_SIZE);
    if (e.type === S_IFREG) {
      // O_NONBLOCK: if a fifo took the file's place since lstat, opening it must not hang.
      const fh = await local(fsp.open(e.path, FS.O_RDONLY | FS.O_NOFOLLOW | FS.O_NONBLOCK), "open", e.label);
      try {
        const now = await local(fh.stat({ bigint: true }), "stat", e.label);
        if (now.ino !== e.st.ino || now.dev !== e.st.dev)
          throw new ConfigError(`${show(e.label)} was replaced`, 1);
        await write(head);
        for (let left = filelen; left > 0n; ) {
          const want = left < BigInt(CHUNK) ? Number(left) : CHUNK;
          const { bytesRead } = await local(fh.read(buf, 0, want, null), "read", e.label);
          if (bytesRead === 0) throw new ConfigError(`file ${show(e.label)} shrank while being sent`, 1);
          await write(buf.subarray(0, bytesRead));
          left -= BigInt(bytesRead);
          sent += bytesRead;
          if (cb && sent - notified >= PROGRESS_NOTIFY_DELTA) {
            notified = sent;
            cb(sent, total);
          }
        }
      } finally {
        await fh.close().catch(() => {});
      }
    } else {
      await write(link ? Buffer.concat([head, link]) : head);
      sent += link?.length ?? 0;
    }
    if (replied) throw new Stop();
  };
  try {
    await walkAll(paths, opts, sendEntry);
    await write(new Uint8Array(FILE_HEADER_SIZE));
  } catch (e) {
    if (!(e instanceof Stop)) {
      await sink.closeWrite().catch(() => {});
      throw e;
    }
  }
  await sink.closeWrite().catch(() => {});
  const r = await reply;
  const lastName = sanitizeNameForDisplay(r.lastName);
  if (r.code !== 0) return { code: r.code, lastName };
  if (r.crc !== BigInt(crc)) throw new ProtocolError("frame-crc", "qfile checksum mismatch");
  cb?.(sent, total);
  return { code: 0, lastName };
}

/** st_*tim as (seconds truncated to u32, nanoseconds). */
function splitTime(ns: bigint): [number, number] {
  let s = ns / 1_000_000_000n;
  let r = ns % 1_000_000_000n;
  if (r < 0n) [s, r] = [s - 1n, r + 1_000_000_000n];
  return [Number(BigInt.asUintN(32, s)), Number(r)];
}
