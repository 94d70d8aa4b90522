/**
 * Bun-native I/O for the relay binary only (`qubesair.NoiseProxy`, host/relay-main.ts). qrexec
 * starts the relay once per call, so its start-up is on every call's critical path: measured on
 * the development machine, a compiled Bun program that imports node:net starts in ~13 ms,
 * node:tty ~15 ms, node:child_process ~7 ms, against ~4-6 ms for Bun.connect/Bun.spawn. The
 * relay runs only in sys-remote as a compiled Bun binary, never on Node, so these Bun-only
 * versions of a unix-socket connect and a small command run are worth their place here.
 * Must never: be imported by code that also runs as the Node bundle (the agent).
 */
import type { ByteStream } from "../transport/transport.ts";
import { TransportError } from "../transport/transport.ts";

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
