/**
 * Paces the garbage collector by the bytes the link moves. Every record leaves short-lived
 * copies behind (the socket's chunk, the sealed or opened record, a pipe's chunk), tens of KiB
 * each; in the event loop's pattern Bun's collector reaches them late, so with many concurrent
 * calls they piled up: 256 calls of 64 KB through `cat` held 50-80 MiB of dead ArrayBuffers at
 * once, 180-214 MiB RSS, ~92 MiB right after a forced collection
 * (test/integration/agent-memory.test.ts). So after GC_PACE_BYTES moved, a full collection, at
 * most one per GC_FULL_INTERVAL_MS (platform.collectGarbage: it stops the event loop).
 * Trade-off, measured on a synthetic 2 GB/s record loop (busy machine, noisy): one per 250 ms
 * cost 0-10 % more CPU per GB, one per 100 ms 5-20 %, while 100 ms held the 256 calls at
 * ~105 MiB against 118-190 MiB at 250 ms. An asynchronous ask (Bun.gc(false)) per 4 MiB made
 * the loop's wall time 60 % longer, so it is not used. The interval is the knob; confirm it with
 * the bench on a quiet machine.
 * Must never: change a byte of the stream, or collect more often than the interval allows.
 */
import type { Duplex } from "../../core/session/duplex.ts";
import { platform } from "../../platform/index.ts";

/** Link bytes (both ways, all sessions) before a collection is due. */
export const GC_PACE_BYTES = 4 * 1024 * 1024;
/** Least time between two collections: at most 4 a second, whatever the link's rate. */
export const GC_FULL_INTERVAL_MS = 250;

export interface GcPacer {
  /** `stream` with every byte read and written counted towards the next collection. */
  paced(stream: Duplex): Duplex;
}

export function gcPacer(
  collect: () => void,
  now: () => number,
  paceBytes = GC_PACE_BYTES,
  intervalMs = GC_FULL_INTERVAL_MS,
): GcPacer {
  let since = 0;
  let last = Number.NEGATIVE_INFINITY;
  const moved = (n: number) => {
    since += n;
    if (since < paceBytes) return;
    const t = now();
    if (t - last < intervalMs) return;
    since = 0;
    last = t;
    collect();
  };
  return {
    paced: (stream) => ({
      async read() {
        const chunk = await stream.read();
        if (chunk) moved(chunk.length);
        return chunk;
      },
      write(data) {
        moved(data.length);
        return stream.write(data);
      },
      close: () => stream.close(),
    }),
  };
}

/** The agent's one pacer: the count is over all its links. */
const agentPacer = gcPacer(
  () => platform.collectGarbage(),
  () => platform.monotonicMs(),
);
export const gcPaced = (stream: Duplex): Duplex => agentPacer.paced(stream);
