/**
 * A serial line (USB CDC-ACM, USB gadget ttyGS0, FTDI, or a pty in tests) as a ByteStream.
 * The tty is put in raw 8N1 mode with stty, read through the platform's event-loop tty reader
 * and written with node:fs writes.
 *
 * Never uses `serialport` (it crashes under Bun) and never opens the tty without O_NOCTTY (a
 * session leader such as a systemd service would make it its controlling terminal and die of
 * SIGHUP when the cable is pulled).
 *
 * Why writes are blocking writes in the runtime's thread pool: neither runtime can wait for a tty
 * to become writable. Node's tty.WriteStream and Bun's FileSink write a tty synchronously and
 * freeze the event loop while the peer does not read (measured on a pty pair), and retrying
 * non-blocking writes on EAGAIN reached only ~45% of raw pty throughput. A pooled write sleeps in
 * the kernel and wakes exactly when there is room: raw speed, loop stays live.
 *
 * Its cost, and how it is bounded (issue 9): a write the far end never drains pins one pool
 * thread, and nothing we can do wakes it: closing the fd does not, and tcflush(TCOFLUSH) on the
 * pty's slave does not either (tried on a pty pair: the writer stayed asleep until the master
 * was read; Node has no tcflush anyway). The kernel also serialises writers of one tty (a second
 * blocking write(2) sleeps behind the first under the tty's write lock). So:
 *  - every write(2) has a deadline (SERIAL_WRITE_DEADLINE_MS, plus the time to clock the bytes
 *    out at a configured baud rate; `writeDeadlineMs` for tests): past it the stream fails with
 *    TransportError "write-timeout", every write queued on it is refused, and the session above
 *    ends; the caller is never held by a write for longer than that;
 *  - at most one write(2) per device is in the pool, process-wide: a reopened stream never
 *    issues a second one behind a stuck one (it would only pin a second thread, and could not
 *    overtake it in the kernel anyway). It waits in JS, under the same deadline, for the stuck
 *    write to return, which happens as soon as the line works and the far end reads again
 *    (then the stuck write finishes the tail of an old frame, which the far end drops as a bad
 *    frame) — so a stall costs one pinned thread per device while it lasts, never a wedged
 *    process and never a stream that waits for ever.
 *
 * Must never import platform/: platform/ builds on this folder's stream contract, so the runtime
 * calls needed here (stat, spawn for stty, the tty reader) come in as SerialPlatform, an
 * interface declared below that platform/'s `platform` satisfies; callers pass it.
 */

import * as fs from "node:fs";
import { ConfigError } from "../core/errors.ts";
import { SERIAL_MAX_FRAME, SERIAL_WRITE_DEADLINE_MS } from "../core/wire/limits.ts";
import { type ByteSource, type ByteStream, TransportError, toTransportError } from "./transport.ts";

/** A child process as far as openSerial looks at it (stty's stderr and exit). */
export interface SerialChild {
  readonly stdout: ByteSource | null;
  readonly stderr: ByteSource | null;
  readonly exited: Promise<{ readonly code: number | null; readonly signal: string | null }>;
  kill(signal?: string): boolean;
}

/**
 * How a spawn reports a program that could not be started at all (ENOENT, EACCES): platform/'s
 * SpawnError implements it. Matched by this field, never by message or class name.
 */
export interface SpawnFailure {
  readonly spawnFailed: true;
  /** The errno name, e.g. "ENOENT". */
  readonly code: string;
}

/** The runtime calls openSerial makes; platform/'s Platform has them (structurally). */
export interface SerialPlatform {
  /** Follows symlinks (a /dev/serial/by-id/ name reports the device); null if there is none. */
  stat(path: string): Promise<{ readonly isCharDevice: boolean } | null>;
  /** Starts argv without a shell; rejects with a SpawnFailure if the program cannot start. */
  spawn(
    argv: readonly string[],
    options: { stdin: "ignore"; stdout: "ignore" | "pipe"; stderr: "pipe" },
  ): Promise<SerialChild>;
  /** Reads the tty through the event loop, opened with O_NOCTTY; EIO reads as EOF. */
  openTtyReader(path: string): Promise<ByteSource>;
}

export interface SerialOptions {
  /** The runtime: pass platform/'s `platform`. */
  platform: SerialPlatform;
  /** Line speed for real UARTs (FTDI). USB CDC-ACM and ptys ignore it. Default: leave as is. */
  baud?: number;
  /**
   * How long one write(2) may take before the stream fails with "write-timeout" (see the
   * header). Default: SERIAL_WRITE_DEADLINE_MS plus the bytes' time on the wire at `baud`.
   */
  writeDeadlineMs?: number;
}

function isSpawnFailure(e: unknown): e is SpawnFailure {
  const f = e as Partial<SpawnFailure> | null;
  return typeof f === "object" && f !== null && f.spawnFailed === true && typeof f.code === "string";
}

/**
 * Raw 8N1: no echo, no line editing, no CR/LF or flow-control translation, no signals from
 * bytes, and `clocal` so a missing carrier never blocks open or hangs up the line.
 */
export const STTY_RAW_ARGS = [
  "raw",
  "-echo",
  "-echoe",
  "-echok",
  "-echonl",
  "-iexten",
  "-icrnl",
  "-ixon",
  "-ixoff",
  "-crtscts",
  "clocal",
  "cread",
  "cs8",
  "-parenb",
  "-cstopb",
] as const;

/**
 * Per device (st_rdev): settles when the write(2) now in the pool for that device returns (which
 * for a stuck write may be much later than its stream gave up on it). See the header.
 */
const inPool = new Map<number, Promise<void>>();

export async function openSerial(path: string, options: SerialOptions): Promise<ByteStream> {
  const p = options.platform;
  const st = await p.stat(path);
  if (!st) {
    throw new ConfigError(
      `serial device ${path} does not exist: check that the device is plugged in and attached to ` +
        "this qube, and use its /dev/serial/by-id/ name (ls -l /dev/serial/by-id/)",
    );
  }
  if (!st.isCharDevice) {
    throw new ConfigError(
      `${path} is not a serial device: give a tty such as /dev/serial/by-id/... or /dev/ttyACM0`,
    );
  }
  const baud = options.baud;
  if (baud !== undefined && !(Number.isInteger(baud) && baud > 0)) {
    throw new ConfigError(
      `serial speed ${baud} is not a baud rate: give one such as 115200, or none for USB`,
    );
  }
  const wd = options.writeDeadlineMs;
  if (wd !== undefined && !(Number.isInteger(wd) && wd > 0)) {
    throw new ConfigError(`serial write deadline ${wd} is not a positive number of milliseconds`);
  }
  await configure(p, path, options.baud);
  const reader = await p.openTtyReader(path);
  let fd: number;
  try {
    fd = await openWriteFd(path);
  } catch (e) {
    reader.close();
    throw e;
  }
  const deadlineFor = (bytes: number) =>
    wd ?? SERIAL_WRITE_DEADLINE_MS + (baud ? Math.ceil((bytes * 10 * 1000) / baud) : 0);
  return serialStream(path, reader, fd, deadlineFor);
}

/**
 * Per device (st_rdev): the `stty -g` settings we last left it in. Setting them again is skipped
 * when the line still has exactly these (see configure()).
 */
const configured = new Map<number, string>();

/**
 * Puts the line in raw mode, unless it already is in exactly the mode we set last time. Why the
 * check: stty sets modes with tcsetattr(TCSADRAIN), which sleeps until the line's output has
 * drained. After a stall, our own unsent bytes (a stuck write) sit in that output, and they drain
 * only when the far end reads, which it may not do while its own reopen waits in the same way:
 * both ends asleep in stty for ever (issue 9, point 3). Reading the settings (`stty -g`) never
 * waits. A replugged device comes back with default settings, which differ, so it is set again.
 * Every stty run has a deadline (STTY_DEADLINE_MS): past it stty is killed and the open fails
 * with TransportError "stty-timeout", to be retried by the caller.
 */
async function configure(p: SerialPlatform, path: string, baud: number | undefined): Promise<void> {
  const rdev = await deviceOf(path);
  const want = rdev === null ? undefined : configured.get(rdev);
  if (want !== undefined && (await stty(p, path, ["-g"])).trim() === want) return;
  await stty(p, path, [...STTY_RAW_ARGS, ...(baud ? [String(baud)] : [])]);
  if (rdev !== null) configured.set(rdev, (await stty(p, path, ["-g"])).trim());
}

/** The tty's device number, or null if it cannot be stat'ed (open reports that properly). */
function deviceOf(path: string): Promise<number | null> {
  return new Promise((resolve) => fs.stat(path, (e, st) => resolve(e ? null : st.rdev)));
}

/** Longest a `stty` run may take (it normally takes milliseconds). */
const STTY_DEADLINE_MS = 5000;

/** Runs `stty -F path ...args`; its stdout. ConfigError when it fails, see configure(). */
async function stty(p: SerialPlatform, path: string, args: readonly string[]): Promise<string> {
  const argv = ["stty", "-F", path, ...args];
  let child: SerialChild;
  try {
    child = await p.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    if (isSpawnFailure(e)) throw new ConfigError(`cannot run stty (${e.code}): install coreutils`);
    throw e;
  }
  const drain = async (src: ByteSource | null) => {
    let text = "";
    for (let c = await src?.read(); c; c = await src!.read()) {
      if (text.length < 4096) text += new TextDecoder().decode(c);
    }
    src?.close();
    return text;
  };
  // Not even SIGKILL ends an stty asleep on a stuck line at once (its exit waits on the tty
  // too, tried on a pty): past the deadline we kill it and give up on it without waiting.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new TransportError(
          `serial ${path}: stty did not finish within ${STTY_DEADLINE_MS} ms`,
          "stty-timeout",
        ),
      );
    }, STTY_DEADLINE_MS);
  });
  const [out, err, { code, signal }] = await Promise.race([
    Promise.all([drain(child.stdout), drain(child.stderr), child.exited]),
    late,
  ]).finally(() => clearTimeout(timer));
  if (code !== 0) {
    const why = err.trim().split("\n")[0] || `exit ${code ?? signal}`;
    throw new ConfigError(`cannot put ${path} in raw mode with stty: ${why}`);
  }
  return out;
}

function openWriteFd(path: string): Promise<number> {
  const { O_WRONLY, O_NOCTTY } = fs.constants;
  return new Promise((resolve, reject) =>
    fs.open(path, O_WRONLY | O_NOCTTY, (e, fd) =>
      e ? reject(toTransportError(`serial ${path}: open`, e)) : resolve(fd),
    ),
  );
}

function writeOnce(fd: number, data: Uint8Array, off: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.write(fd, data, off, data.length - off, null, (e, n) => (e ? reject(e) : resolve(n))),
  );
}

/** Resolves with p, or rejects with `onLate()` if p has not settled within ms. */
function within<T>(p: Promise<T>, ms: number, onLate: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onLate()), ms);
    (timer as { unref?: () => void }).unref?.();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * The stream over an open reader and a (blocking) write fd. A serial line has no half-close:
 * closeWrite() waits for queued writes and then refuses new ones, but the peer sees no EOF; an
 * end of stream has to be said by the framing above. Writes are serialised on one chain so
 * concurrent callers never interleave partial writes; each write(2) runs under a deadline, and
 * waits (under the same deadline) for any write(2) still in the pool for this device.
 */
function serialStream(
  path: string,
  reader: ByteSource,
  fd: number,
  deadlineFor: (bytes: number) => number,
): ByteStream {
  const description = `serial ${path}`;
  const device = fs.fstatSync(fd).rdev;
  let writeClosed = false;
  let isClosed = false;
  let failure: TransportError | null = null;
  let last: Promise<unknown> = Promise.resolve();
  // close() must fail pending writes now, even one whose write(2) is blocked in the pool.
  const pending = new Set<(e: TransportError) => void>();
  let resolveFdClosed!: () => void;
  const fdClosed = new Promise<void>((r) => {
    resolveFdClosed = r;
  });
  const stalled = (ms: number) => () => {
    failure ??= new TransportError(
      `${description}: a write did not finish within ${ms} ms (the far end stopped reading)`,
      "write-timeout",
    );
    return failure;
  };

  const writeAll = async (data: Uint8Array) => {
    for (let off = 0; off < data.length; ) {
      if (isClosed) throw new TransportError(`${description}: closed`, "closed");
      if (failure) throw failure;
      const busy = inPool.get(device);
      if (busy) {
        // A write(2) of ours or of an earlier stream on this line is still in the pool.
        const ms = deadlineFor(SERIAL_MAX_FRAME);
        await within(busy, ms, stalled(ms));
        continue;
      }
      const op = writeOnce(fd, data, off);
      const returned = op.then(
        () => {},
        () => {},
      );
      inPool.set(device, returned);
      void returned.then(() => {
        if (inPool.get(device) === returned) inPool.delete(device);
      });
      const ms = deadlineFor(data.length - off);
      try {
        off += await within(op, ms, stalled(ms));
      } catch (e) {
        // EIO: the other end went away (cable pulled, pty closed).
        failure ??= toTransportError(description, e);
        throw failure;
      }
    }
  };

  return {
    description,
    closed: Promise.all([reader.closed, fdClosed]).then(() => {}),
    read: () => reader.read(),
    write(data) {
      if (isClosed || writeClosed) {
        const code = isClosed ? "closed" : "write-closed";
        return Promise.reject(new TransportError(`${description}: write after close`, code));
      }
      if (failure) return Promise.reject(failure);
      if (data.length === 0) return Promise.resolve();
      const done = last.then(() => writeAll(data));
      last = done.catch(() => {});
      return new Promise<void>((resolve, reject) => {
        pending.add(reject);
        done.then(resolve, reject).finally(() => pending.delete(reject));
      });
    },
    closeWrite() {
      writeClosed = true;
      return last.then(() => {});
    },
    close() {
      if (isClosed) return;
      isClosed = true;
      writeClosed = true;
      reader.close();
      const e = new TransportError(`${description}: closed`, "closed");
      for (const reject of pending) reject(e);
      pending.clear();
      // Safe with a write still blocked on it: the kernel keeps the file until that write
      // returns, and no later write of ours uses the (reusable) fd number.
      fs.close(fd, () => resolveFdClosed());
    },
  };
}
