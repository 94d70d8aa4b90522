/**
 * A serial line (USB CDC-ACM, USB gadget ttyGS0, FTDI, or a pty in tests) as a ByteStream.
 * The tty is put in raw 8N1 mode with stty, read through the platform's event-loop tty reader
 * and written with non-blocking node:fs writes.
 *
 * Never uses `serialport` (it crashes under Bun) and never opens the tty without O_NOCTTY (a
 * session leader such as a systemd service would make it its controlling terminal and die of
 * SIGHUP when the cable is pulled). Never keeps a write blocked in a thread pool: such a write
 * outlives close() and pins a pool thread while the peer does not read.
 */

import * as fs from "node:fs";
import { assert, ConfigError } from "../core/errors.ts";
import { platform as defaultPlatform } from "../platform/index.ts";
import type { Platform } from "../platform/platform.ts";
import { SpawnError } from "../platform/platform.ts";
import { type ByteSource, type ByteStream, TransportError, toTransportError } from "./transport.ts";

export interface SerialOptions {
  /** Line speed for real UARTs (FTDI). USB CDC-ACM and ptys ignore it. Default: leave as is. */
  baud?: number;
  platform?: Platform;
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
 * While the line's output buffer is full (EAGAIN) we retry: first on the next event-loop turns
 * (a pty or USB endpoint usually drains within microseconds, and a 1 ms timer cut pty throughput
 * to a third), then with a growing timer so a peer that stopped reading costs no CPU. This only
 * happens while a write is pending, never when idle. Node cannot poll a non-pty tty for
 * writability (libuv makes such writes blocking on the loop thread), hence the retry.
 */
const WRITE_RETRY_TURNS = 64;
const WRITE_RETRY_MAX_MS = 16;

export async function openSerial(path: string, options: SerialOptions = {}): Promise<ByteStream> {
  const p = options.platform ?? defaultPlatform;
  const st = await p.stat(path);
  if (!st) {
    throw new ConfigError(
      `serial device ${path} does not exist: check that the device is plugged in and attached to ` +
        "this qube, and use its /dev/serial/by-id/ name (ls -l /dev/serial/by-id/)",
    );
  }
  if (!st.isCharDevice) {
    throw new ConfigError(`${path} is not a serial device: give a tty such as /dev/serial/by-id/... or /dev/ttyACM0`);
  }
  if (options.baud !== undefined) {
    assert(Number.isInteger(options.baud) && options.baud > 0, "serial baud must be a positive integer");
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
  return serialStream(path, reader, fd);
}

async function configure(p: Platform, path: string, baud: number | undefined): Promise<void> {
  const argv = ["stty", "-F", path, ...STTY_RAW_ARGS, ...(baud ? [String(baud)] : [])];
  let child: Awaited<ReturnType<Platform["spawn"]>>;
  try {
    child = await p.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  } catch (e) {
    if (e instanceof SpawnError) throw new ConfigError(`cannot run stty (${e.code}): install coreutils`);
    throw e;
  }
  let err = "";
  for (;;) {
    const c = await child.stderr!.read();
    if (!c) break;
    if (err.length < 500) err += new TextDecoder().decode(c);
  }
  child.stderr!.close();
  const { code, signal } = await child.exited;
  if (code !== 0) {
    const why = err.trim().split("\n")[0] || `exit ${code ?? signal}`;
    throw new ConfigError(`cannot put ${path} in raw mode with stty: ${why}`);
  }
}

function openWriteFd(path: string): Promise<number> {
  const { O_WRONLY, O_NOCTTY, O_NONBLOCK } = fs.constants;
  return new Promise((resolve, reject) =>
    fs.open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK, (e, fd) =>
      e ? reject(toTransportError(`serial ${path}: open`, e)) : resolve(fd),
    ),
  );
}

/**
 * One non-blocking write(2). Synchronous on purpose: with O_NONBLOCK it never blocks, and it
 * costs a syscall instead of a thread-pool round trip per chunk.
 */
function writeOnce(fd: number, data: Uint8Array, off: number): number | "again" {
  try {
    return fs.writeSync(fd, data, off, data.length - off);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EAGAIN") return "again";
    throw e;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/**
 * The stream over an open reader and a non-blocking write fd. A serial line has no half-close:
 * closeWrite() waits for queued writes and then refuses new ones, but the peer sees no EOF; an
 * end of stream has to be said by the framing above. Writes are serialised on one chain so
 * concurrent callers never interleave partial writes.
 */
function serialStream(path: string, reader: ByteSource, fd: number): ByteStream {
  const description = `serial ${path}`;
  let chain: Promise<unknown> = Promise.resolve();
  let writeClosed = false;
  let isClosed = false;
  let failure: TransportError | null = null;
  let resolveFdClosed!: () => void;
  const fdClosed = new Promise<void>((r) => {
    resolveFdClosed = r;
  });

  const writeAll = async (data: Uint8Array) => {
    let off = 0;
    let retries = 0;
    while (off < data.length) {
      if (isClosed) throw new TransportError(`${description}: closed`, "closed");
      if (failure) throw failure;
      let r: number | "again";
      try {
        r = writeOnce(fd, data, off);
      } catch (e) {
        // EIO: the other end went away (cable pulled, pty closed).
        failure ??= toTransportError(description, e);
        throw failure;
      }
      if (r === "again") {
        retries++;
        if (retries <= WRITE_RETRY_TURNS) await nextTurn();
        else await sleep(Math.min(2 ** (retries - WRITE_RETRY_TURNS - 1), WRITE_RETRY_MAX_MS));
      } else {
        off += r;
        retries = 0;
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
      const done = chain.then(() => writeAll(data));
      chain = done.catch(() => {});
      return done;
    },
    closeWrite() {
      writeClosed = true;
      return chain.then(() => {});
    },
    close() {
      if (isClosed) return;
      isClosed = true;
      writeClosed = true;
      reader.close();
      // Close the fd only once no fs.write can still be using it (an fd number is reused).
      void chain.then(() => fs.close(fd, () => resolveFdClosed()));
    },
  };
}
