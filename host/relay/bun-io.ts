/**
 * Bun-native I/O for the relay binary only (`qubesair.NoiseProxy`, host/relay/main.ts). qrexec
 * starts the relay once per call, so its start-up is on every call's critical path: measured on
 * the development machine, a compiled Bun program that imports node:net starts in ~13 ms,
 * node:tty ~15 ms, node:child_process ~7 ms, against ~4-6 ms for Bun.connect/Bun.spawn. The
 * relay runs only in sys-remote as a compiled Bun binary, never on Node, so these Bun-only
 * versions of a unix-socket connect and a small command run are worth their place here.
 * Must never: be imported by code that also runs as the Node bundle (the agent).
 */
import type { ByteSink, ByteSource, ByteStream } from "../../transport/transport.ts";
import { TransportError } from "../../transport/transport.ts";

/** Connects to a unix socket; the stream follows the ByteStream contract (transport.ts). */
export async function bunUnixConnect(path: string): Promise<ByteStream> {
  const queue: Uint8Array[] = [];
  let eof = false;
  let failure: TransportError | null = null;
  let reader: { resolve: (c: Uint8Array | null) => void; reject: (e: Error) => void } | null = null;
  let pendingWrite: { rest: Uint8Array; resolve: () => void; reject: (e: Error) => void } | null = null;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  const wake = () => {
    if (!reader) return;
    const r = reader;
    const chunk = queue.shift();
    if (chunk) r.resolve(chunk);
    else if (failure) r.reject(failure);
    else if (eof) r.resolve(null);
    else return;
    reader = null;
  };
  const flush = (socket: { write(d: Uint8Array): number }) => {
    while (pendingWrite) {
      const n = socket.write(pendingWrite.rest);
      if (n < 0) return fail(new TransportError(`unix ${path}: write failed`, "EPIPE"));
      if (n < pendingWrite.rest.length) {
        pendingWrite.rest = pendingWrite.rest.subarray(n);
        return; // the rest goes on the next drain
      }
      const done = pendingWrite.resolve;
      pendingWrite = null;
      done();
    }
  };
  const fail = (e: TransportError) => {
    failure ??= e;
    pendingWrite?.reject(failure);
    pendingWrite = null;
    wake();
  };
  let socket: Awaited<ReturnType<typeof Bun.connect>>;
  try {
    socket = await Bun.connect({
      unix: path,
      allowHalfOpen: true,
      socket: {
        data(_s, chunk) {
          queue.push(new Uint8Array(chunk)); // a copy: Bun may reuse its buffer
          wake();
        },
        drain: (s) => flush(s),
        end() {
          eof = true;
          wake();
        },
        close() {
          // Reads drain what arrived, then see EOF; only writes fail from here on.
          eof = true;
          pendingWrite?.reject(new TransportError(`unix ${path}: closed`, "closed"));
          pendingWrite = null;
          wake();
          resolveClosed();
        },
        error: (_s, e) =>
          fail(new TransportError(`unix ${path}: ${e.message}`, (e as { code?: string }).code ?? "io")),
      },
    });
  } catch (e) {
    throw new TransportError(`unix ${path}: connect failed`, (e as { code?: string }).code ?? "ENOENT");
  }
  let writeClosed = false;
  return {
    description: `unix ${path}`,
    closed,
    read() {
      if (reader) throw new Error("concurrent read");
      return new Promise((resolve, reject) => {
        reader = { resolve, reject };
        wake();
      });
    },
    write(data) {
      if (failure) return Promise.reject(failure);
      if (writeClosed)
        return Promise.reject(new TransportError(`unix ${path}: write after close`, "write-closed"));
      if (data.length === 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        pendingWrite = { rest: data, resolve, reject };
        flush(socket);
      });
    },
    async closeWrite() {
      writeClosed = true;
      socket.shutdown();
    },
    close() {
      socket.terminate();
    },
  };
}

/** Runs a small command (qubesdb-read) and returns its exit code and stdout (capped). */
export async function bunRunCommand(
  argv: string[],
  maxOut = 4096,
): Promise<{ code: number; stdout: string }> {
  try {
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    return { code, stdout: out.slice(0, maxOut) };
  } catch {
    return { code: 127, stdout: "" };
  }
}

/** Tries each unix socket path in order (the daemon's by the same rule): the first that answers. */
export async function bunUnixConnectFirst(paths: readonly string[]): Promise<ByteStream> {
  let last: unknown = new TransportError("no socket path", "ENOENT");
  for (const path of paths) {
    try {
      return await bunUnixConnect(path);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/** Our stdin as a ByteSource (qrexec gives the service the caller's stream on fd 0). */
export function bunStdin(): ByteSource {
  const reader = Bun.stdin.stream().getReader();
  let done = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  const finish = () => {
    done = true;
    resolveClosed();
  };
  return {
    description: "stdin",
    closed,
    async read() {
      if (done) return null;
      try {
        for (;;) {
          const r = await reader.read();
          if (r.done) {
            finish();
            return null;
          }
          if (r.value.length > 0) return r.value;
        }
      } catch {
        finish(); // a stdin that fails (EIO, reset) ends like EOF: the call's input is over
        return null;
      }
    },
    close() {
      if (done) return;
      finish();
      void reader.cancel().catch(() => {});
    },
  };
}

/**
 * fd 1 or 2 as a ByteSink; each write waits until the bytes are out (backpressure). With
 * `closeFd`, closeWrite() closes the descriptor so the reader sees EOF at once (stdout, as
 * qrexec does when the service's stdout ends); node:fs is loaded for that only, in the
 * background, because the exit that follows closes it anyway.
 */
export function bunFdSink(fd: 1 | 2, closeFd: boolean): ByteSink {
  const writer = Bun.file(fd).writer();
  let writeClosed = false;
  let failed: TransportError | null = null;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  return {
    description: fd === 1 ? "stdout" : "stderr",
    closed,
    async write(data) {
      if (failed) throw failed;
      if (writeClosed) throw new TransportError("write after close", "write-closed");
      if (data.length === 0) return;
      try {
        writer.write(data);
        await writer.flush();
      } catch (e) {
        failed = new TransportError(`fd ${fd}: write failed`, (e as { code?: string }).code ?? "EPIPE");
        throw failed;
      }
    },
    async closeWrite() {
      if (writeClosed) return;
      writeClosed = true;
      await Promise.resolve(writer.flush()).catch(() => {});
      if (closeFd) {
        await Promise.resolve(writer.end()).catch(() => {}); // the writer holds its own descriptor
        void import("node:fs").then((fs) => {
          fs.closeSync(fd);
          // Keep the number taken: nothing opened later may become our "stdout".
          const placeholder = fs.openSync("/dev/null", "w");
          if (placeholder !== fd) fs.closeSync(placeholder);
        });
      }
      resolveClosed();
    },
    close() {
      writeClosed = true;
      resolveClosed();
    },
  };
}
