/**
 * The Platform built on node:* modules only. It is the whole platform under Node (the USB Armory
 * bundle, Node 18/20) and the base that platform/bun.ts overrides where Bun needs its own way.
 *
 * Must run on Node 18: no Promise.withResolvers, no global `crypto`, no Bun globals.
 */

import * as cp from "node:child_process";
import { webcrypto } from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as net from "node:net";
import * as path from "node:path";
import * as tty from "node:tty";
import { assert, ConfigError } from "../core/errors.ts";
import { duplexStream, readableSource, writableSink } from "../transport/node-stream.ts";
import {
  type ByteSource,
  type ByteStream,
  TransportError,
  toTransportError,
} from "../transport/transport.ts";
import type { ChildProcess, ExitInfo, FileStat, Listener, Platform, SpawnOptions } from "./platform.ts";
import { SpawnError } from "./platform.ts";

// --- processes ---

export async function nodeSpawn(argv: readonly string[], options: SpawnOptions = {}): Promise<ChildProcess> {
  assert(argv.length > 0 && argv[0] !== "", "spawn: empty argv");
  const name = argv[0]!;
  const child = cp.spawn(name, argv.slice(1), {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: [options.stdin ?? "pipe", options.stdout ?? "pipe", options.stderr ?? "pipe"],
  });
  const exited = new Promise<ExitInfo>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal: signal ?? null })),
  );
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (e: NodeJS.ErrnoException) => {
      child.stdin?.destroy();
      child.stdout?.destroy();
      child.stderr?.destroy();
      reject(new SpawnError(`cannot start ${name}: ${e.code ?? e.message}`, e.code ?? "EIO", { cause: e }));
    });
  });
  return {
    pid: child.pid!,
    stdin: child.stdin ? writableSink(child.stdin, `${name} stdin`) : null,
    stdout: child.stdout ? readableSource(child.stdout, `${name} stdout`) : null,
    stderr: child.stderr ? readableSource(child.stderr, `${name} stderr`) : null,
    exited,
    kill: (signal = "SIGTERM") =>
      child.exitCode === null && child.signalCode === null && child.kill(signal as NodeJS.Signals),
  };
}

// --- files ---

/** The node:fs/promises calls writeFileAtomic uses; tests pass a copy with one call failing. */
export type AtomicFs = Pick<typeof fsp, "open" | "rename" | "unlink">;

export async function writeFileAtomicWith(
  f: AtomicFs,
  file: string,
  data: Uint8Array | string,
  mode = 0o600,
): Promise<void> {
  const dir = path.dirname(file);
  const rand = Buffer.from(webcrypto.getRandomValues(new Uint8Array(6))).toString("hex");
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${rand}`);
  try {
    // "wx": never follow or clobber something already at the temporary name.
    const h = await f.open(tmp, "wx", mode);
    try {
      await h.writeFile(data);
      await h.chmod(mode); // open's mode is filtered by umask; the caller asked for exactly this.
      await h.sync();
    } finally {
      await h.close();
    }
    await f.rename(tmp, file);
  } catch (e) {
    await f.unlink(tmp).catch(() => {});
    throw e;
  }
  // Make the rename itself durable. Some filesystems refuse fsync on a directory; that only
  // weakens durability, not atomicity, so it is not an error.
  const d = await f.open(dir, "r").catch(() => null);
  if (d) await d.sync().catch(() => {});
  await d?.close();
}

async function stat(p: string): Promise<FileStat | null> {
  try {
    const s = await fsp.stat(p);
    return {
      mode: s.mode & 0o7777,
      size: s.size,
      uid: s.uid,
      gid: s.gid,
      mtimeMs: s.mtimeMs,
      isFile: s.isFile(),
      isDirectory: s.isDirectory(),
      isCharDevice: s.isCharacterDevice(),
      isSocket: s.isSocket(),
    };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw e;
  }
}

async function mkdirp(p: string, mode: number): Promise<void> {
  await fsp.mkdir(p, { recursive: true, mode });
  await fsp.chmod(p, mode);
}

export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes per call.
  for (let i = 0; i < n; i += 65536) webcrypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

// --- unix sockets ---

function listenOnce(p: string, mode: number, onConnection: (s: ByteStream) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true }, (sock) =>
      onConnection(duplexStream(sock, `unix ${p}`)),
    );
    server.once("error", reject);
    // bind() happens inside listen(): the umask makes the socket file private from the start
    // (chmod afterwards alone would leave a window).
    const old = process.umask(~mode & 0o777);
    try {
      server.listen(p, () => resolve(server));
    } finally {
      process.umask(old);
    }
  });
}

export async function unixListen(
  p: string,
  onConnection: (s: ByteStream) => void,
  options: { mode?: number } = {},
): Promise<Listener> {
  const mode = options.mode ?? 0o600;
  let server: net.Server;
  try {
    server = await listenOnce(p, mode, onConnection);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw toTransportError(`unix ${p}: listen`, e);
    const live = await unixConnect(p).then(
      (s) => {
        s.close();
        return true;
      },
      () => false,
    );
    if (live) throw new ConfigError(`${p} is in use by a running daemon: stop it before starting another`);
    await fsp.unlink(p);
    server = await listenOnce(p, mode, onConnection);
  }
  await fsp.chmod(p, mode);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => fsp.unlink(p).then(resolve, () => resolve()));
      }),
  };
}

export function unixConnect(p: string): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: p, allowHalfOpen: true });
    const onError = (e: Error) => reject(toTransportError(`unix ${p}: connect`, e));
    sock.once("error", onError);
    sock.once("connect", () => {
      sock.off("error", onError);
      resolve(duplexStream(sock, `unix ${p}`));
    });
  });
}

// --- tty ---

export function openTtyFd(p: string, extraFlags = 0): Promise<number> {
  const { O_RDONLY, O_NOCTTY } = fs.constants;
  return new Promise((resolve, reject) =>
    fs.open(p, O_RDONLY | O_NOCTTY | extraFlags, (e, fd) =>
      e ? reject(toTransportError(`serial ${p}: open`, e)) : resolve(fd),
    ),
  );
}

/** libuv's tty handle: epoll-driven, and for a pty it reopens the slave so flags stay private. */
async function openTtyReader(p: string): Promise<ByteSource> {
  const fd = await openTtyFd(p);
  let rs: tty.ReadStream;
  try {
    rs = new tty.ReadStream(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw new TransportError(`serial ${p}: not a tty`, "ENOTTY", { cause: e });
  }
  return readableSource(rs, `serial ${p}`, { eofCodes: ["EIO"] });
}

export const nodePlatform: Platform = {
  name: "node",
  spawn: nodeSpawn,
  readFile: async (p) => {
    const b = await fsp.readFile(p);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  },
  writeFileAtomic: (p, data, mode) => writeFileAtomicWith(fsp, p, data, mode),
  stat,
  mkdirp,
  chmod: (p, mode) => fsp.chmod(p, mode),
  now: () => Date.now(),
  monotonicMs: () => performance.now(),
  randomBytes,
  // Node exposes gc() only with --expose-gc; V8 collects on its own schedule otherwise.
  releaseGarbage: () => (globalThis as { gc?: () => void }).gc?.(),
  collectGarbage: () => (globalThis as { gc?: () => void }).gc?.(),
  unixListen,
  unixConnect,
  openTtyReader,
};
