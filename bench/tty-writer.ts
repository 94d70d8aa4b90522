/**
 * EXPERIMENT (bench/ only): the serial write loop of transport/serial.ts with a different wait on
 * EAGAIN, to show what that wait costs (bench/README.md "Where the time goes").
 *
 *   backoff  serial.ts today: async fs.write on a non-blocking fd; on EAGAIN sleep 1, 2, 4 .. 16 ms
 *   hybrid   on EAGAIN first retry on the next turn of the event loop (setImmediate) for up to
 *            SPIN_MS of consecutive EAGAINs, only then sleep with the same backoff: the line is
 *            kept full while it drains, and a stalled peer still costs no CPU
 *
 * (Bun.file(fd).writer() and tty.WriteStream were tried too: on a pty fd both block the whole
 * event loop once the peer stops reading, so neither is an option.)
 */
import * as fs from "node:fs";

export const SPIN_MS = 2;

export interface TtyWriterStats {
  eagain: number;
  sleptMs: number;
}

export function ttyWriter(fd: number, mode: "backoff" | "hybrid") {
  const stats: TtyWriterStats = { eagain: 0, sleptMs: 0 };
  const writeOnce = (data: Uint8Array, off: number) =>
    new Promise<number | "again">((resolve, reject) =>
      fs.write(fd, data, off, data.length - off, null, (e, n) =>
        !e ? resolve(n) : e.code === "EAGAIN" ? resolve("again") : reject(e),
      ),
    );
  const writeAll = async (data: Uint8Array) => {
    let off = 0;
    let delay = 1;
    let streakStart = 0;
    while (off < data.length) {
      const r = await writeOnce(data, off);
      if (r !== "again") {
        off += r;
        delay = 1;
        streakStart = 0;
        continue;
      }
      stats.eagain++;
      const now = performance.now();
      if (streakStart === 0) streakStart = now;
      if (mode === "hybrid" && now - streakStart < SPIN_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      stats.sleptMs += performance.now() - now;
      delay = Math.min(delay * 2, 16);
    }
  };
  let chain: Promise<unknown> = Promise.resolve();
  return {
    stats,
    /** Serialised like serial.ts: concurrent callers never interleave partial writes. */
    write(data: Uint8Array): Promise<void> {
      const done = chain.then(() => writeAll(data));
      chain = done.catch(() => {});
      return done;
    },
    drained: () => chain.then(() => {}),
  };
}
