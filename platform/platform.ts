/**
 * What agent/ and host/ need from a JavaScript runtime, as one interface with a Bun and a Node
 * implementation (platform/bun.ts, platform/node.ts; platform/index.ts picks one). The agent runs
 * as a compiled Bun binary and as a Node 18/20 bundle on the USB Armory, so code outside
 * platform/ must never touch `Bun.*` or runtime-only behaviour directly.
 *
 * This module holds only types and pure helpers: it must never do I/O.
 */

import { constants as osConstants } from "node:os";
import type { ByteSink, ByteSource, ByteStream } from "../transport/transport.ts";

export type StdioMode = "pipe" | "inherit" | "ignore";

export interface SpawnOptions {
  /** The child's whole environment: it replaces ours, so nothing leaks in by accident. Default: ours. */
  env?: Record<string, string>;
  cwd?: string;
  /** Default "pipe" for all three. */
  stdin?: StdioMode;
  stdout?: StdioMode;
  stderr?: StdioMode;
}

export interface ExitInfo {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  /** Signal name ("SIGTERM") when a signal ended the process, else null. */
  signal: string | null;
}

/** A started child process. Pipes follow the ByteStream contract, so output streams unbuffered. */
export interface ChildProcess {
  readonly pid: number;
  /** Null unless stdin was "pipe". closeWrite() gives the child EOF. */
  readonly stdin: ByteSink | null;
  readonly stdout: ByteSource | null;
  readonly stderr: ByteSource | null;
  /** Resolves once the process has exited (its pipes may still hold unread output). Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** Sends a signal (default SIGTERM); false if the process had already exited. */
  kill(signal?: string): boolean;
}

/**
 * The program could not be started at all (ENOENT, EACCES): qrexec reports this as 127/126.
 * `spawnFailed` is what transport/serial.ts matches (its SpawnFailure: it may not import
 * platform/; transport/serial.test.ts checks the two shapes agree); code that may import this
 * class matches with instanceof.
 */
export class SpawnError extends Error {
  override readonly name = "SpawnError";
  readonly spawnFailed = true;
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface FileStat {
  /** Permission bits only (mode & 0o7777). */
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  isFile: boolean;
  isDirectory: boolean;
  isCharDevice: boolean;
  isSocket: boolean;
}

export interface Listener {
  /** Stops accepting; connections already accepted stay open. Resolves when the listener is gone. */
  close(): Promise<void>;
}

export interface UnixListenOptions {
  /** Permission bits for the socket file (who may connect). Default 0o600. */
  mode?: number;
}

export interface Platform {
  readonly name: "bun" | "node";

  /**
   * Starts argv[0] (looked up in PATH) with argv[1..]. Resolves once the process runs; rejects
   * with SpawnError if it could not be started. Never goes through a shell.
   */
  spawn(argv: readonly string[], options?: SpawnOptions): Promise<ChildProcess>;

  /** Rejects with the runtime's errno error (it has `.code`, e.g. "ENOENT"). */
  readFile(path: string): Promise<Uint8Array>;
  /**
   * Replaces `path` so readers see either the old or the new content, never a mix, even across a
   * crash: writes a temporary file beside it, fsyncs, renames over, fsyncs the directory. On any
   * failure the temporary file is removed and the old content is untouched. `mode` default 0o600.
   */
  writeFileAtomic(path: string, data: Uint8Array | string, mode?: number): Promise<void>;
  /** Follows symlinks (so /dev/serial/by-id/... reports the device). Null if it does not exist. */
  stat(path: string): Promise<FileStat | null>;
  /** mkdir -p; the last directory gets exactly `mode` (umask does not apply), parents default bits. */
  mkdirp(path: string, mode: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;

  /** Wall-clock milliseconds since the epoch (for timestamps; may jump). */
  now(): number;
  /** Monotonic milliseconds since an arbitrary origin (for timeouts and rates; never jumps). */
  monotonicMs(): number;
  /** Cryptographically secure random bytes (crypto.getRandomValues). */
  randomBytes(n: number): Uint8Array;

  /**
   * A full garbage collection now, and the freed pages handed back to the OS where the runtime
   * can (Bun); a no-op where it cannot (Node without --expose-gc). For a daemon at the end of its
   * start-up, whose garbage would otherwise stay resident until allocation triggers a collection.
   */
  releaseGarbage(): void;

  /** A full garbage collection now, pages kept for reuse (Bun); a no-op where it cannot (Node). */
  collectGarbage(): void;

  /**
   * Listens on a unix socket path. A stale socket file with no listener is replaced; a live one is
   * a ConfigError (another daemon runs). The file is removed again by close().
   */
  unixListen(
    path: string,
    onConnection: (stream: ByteStream) => void,
    options?: UnixListenOptions,
  ): Promise<Listener>;
  /** Rejects with TransportError (ENOENT / ECONNREFUSED when no daemon listens). */
  unixConnect(path: string): Promise<ByteStream>;

  /**
   * Opens a tty for reading through the event loop (epoll), never with a read blocked in a thread
   * pool: such a read outlives close() and swallows the next bytes on the line. Opens with
   * O_NOCTTY so the tty never becomes our controlling terminal (a hang-up would SIGHUP us).
   * EIO (the other side of a pty went away) reads as EOF. The source owns its own fd.
   */
  openTtyReader(path: string): Promise<ByteSource>;
}

/**
 * The shell's exit status of a finished process: the code, or 128 + signal number when a signal
 * ended it (qrexec reports it the same way).
 */
export function exitStatusOf(info: ExitInfo): number {
  if (info.code !== null) return info.code;
  const n = info.signal ? (osConstants.signals as Record<string, number>)[info.signal] : undefined;
  // An unknown signal name would be a runtime bug; 128 alone still reads as "killed".
  return 128 + (n ?? 0);
}
