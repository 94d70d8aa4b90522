/**
 * The process's own stdin/stdout/stderr as ByteSource/ByteSink on raw file descriptors, for the
 * relay and `qubes-air call`. Raw fds (node:fs read/write) rather than process.stdout because a
 * qrexec service must be able to close its stdout when the remote's stdout ends, while the
 * process lives on; Bun's process.stdout keeps fd 1 open until exit (measured). Each write is
 * complete before it resolves (backpressure: a slow caller holds back the remote through the
 * vchan window). EAGAIN (an fd someone made non-blocking) is retried with a short backoff.
 * Must never: buffer a whole input, or report a write as done before the kernel took it.
 */
import * as fs from "node:fs";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";
import { TransportError, toTransportError } from "../../transport/transport.ts";

const CHUNK = 64 * 1024;
const RETRY_MIN_MS = 1;
const RETRY_MAX_MS = 16;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function fdSource(fd: number, description: string): ByteSource {
  let closed = false;
  let resolveClosed!: () => void;
  const closedP = new Promise<void>((r) => {
    resolveClosed = r;
  });
  return {
    description,
    closed: closedP,
    async read() {
      let delay = RETRY_MIN_MS;
      for (;;) {
        if (closed) return null;
        const buf = new Uint8Array(CHUNK);
        const n = await new Promise<number | "again">((resolve, reject) =>
          fs.read(fd, buf, 0, CHUNK, null, (e, got) => {
            if (!e) resolve(got);
            else if (e.code === "EAGAIN") resolve("again");
            else if (e.code === "EIO" || e.code === "ECONNRESET") resolve(0);
            else reject(toTransportError(description, e));
          }),
        );
        if (n === "again") {
          await sleep(delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
          continue;
        }
        if (n === 0) {
          closed = true;
          resolveClosed();
          return null;
        }
        return buf.subarray(0, n);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      resolveClosed();
    },
  };
}

/** `closeFd`: closeWrite() closes the fd itself, so the reader sees EOF now (stdout, not stderr). */
export function fdSink(fd: number, description: string, closeFd: boolean): ByteSink {
  let writeClosed = false;
  let chain: Promise<unknown> = Promise.resolve();
  let resolveClosed!: () => void;
  const closedP = new Promise<void>((r) => {
    resolveClosed = r;
  });
  const writeAll = async (data: Uint8Array) => {
    let off = 0;
    let delay = RETRY_MIN_MS;
    while (off < data.length) {
      const r = await new Promise<number | "again">((resolve, reject) =>
        fs.write(fd, data, off, data.length - off, null, (e, n) => {
          if (!e) resolve(n);
          else if (e.code === "EAGAIN") resolve("again");
          else reject(toTransportError(description, e));
        }),
      );
      if (r === "again") {
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      } else {
        off += r;
        delay = RETRY_MIN_MS;
      }
    }
  };
  const finish = () => {
    if (writeClosed) return chain.then(() => {});
    writeClosed = true;
    const done = chain.then(() => {
      if (closeFd) {
        fs.closeSync(fd);
        // Keep the number taken: a file opened later must not become our "stdout".
        const placeholder = fs.openSync("/dev/null", "w");
        if (placeholder !== fd) fs.closeSync(placeholder);
      }
      resolveClosed();
    });
    chain = done.catch(() => {});
    return done.catch(() => {});
  };
  return {
    description,
    closed: closedP,
    write(data) {
      if (writeClosed)
        return Promise.reject(new TransportError(`${description}: write after close`, "write-closed"));
      if (data.length === 0) return Promise.resolve();
      const done = chain.then(() => writeAll(data));
      chain = done.catch(() => {});
      return done;
    },
    closeWrite: finish,
    close() {
      void finish();
    },
  };
}
