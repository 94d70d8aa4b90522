/**
 * Copies the base image to the new one while hashing it (the base is only ever read), with
 * progress. All-zero chunks are skipped with a seek, so the copy is sparse where the base is
 * empty. Also: a progress line for long steps, and a byte-range comparison (the Armory's U-Boot
 * area must come out unchanged).
 */
import { createHash } from "node:crypto";
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { formatBytes, ImageError, MiB } from "./common.ts";
import { formatDuration } from "./flash-progress.ts";

const CHUNK = 8 * MiB;

/** "copying 1.2 GiB / 2.5 GiB  48%  310.2 MiB/s  ETA 0:04", redrawn on a terminal, else every 25%. */
export class Progress {
  private readonly start = performance.now();
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lastQuarter = -1;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly write: (t: string) => void,
    private readonly tty: boolean,
  ) {}

  update(done: number): void {
    const now = performance.now();
    const pct = this.total > 0 ? Math.floor((done / this.total) * 100) : 100;
    const secs = (now - this.start) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = rate > 0 ? (this.total - done) / rate : Number.NaN;
    const line = `${this.label} ${formatBytes(done)} / ${formatBytes(this.total)}  ${pct}%  ${formatBytes(Math.round(rate))}/s  ETA ${formatDuration(eta)}`;
    if (this.tty) {
      if (done >= this.total || now - this.lastDraw >= 250) {
        this.write(`\r${line}\x1b[K${done >= this.total ? "\n" : ""}`);
        this.lastDraw = now;
      }
    } else {
      const quarter = Math.floor(pct / 25);
      if (quarter > this.lastQuarter) {
        this.write(`${line}\n`);
        this.lastQuarter = quarter;
      }
    }
  }
}

function isZero(buf: Buffer, n: number): boolean {
  for (let i = 0; i < n; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Copies `src` to `dst` (created, mode 0600); returns the sha256 of `src` in hex. Yields to the
 * event loop between chunks so Ctrl-C (the signal) can stop it. */
export async function copyAndHash(
  src: string,
  dst: string,
  progress?: (done: number, total: number) => void,
  signal?: AbortSignal,
): Promise<string> {
  const fin = openSync(src, "r");
  let fout: number | null = null;
  try {
    const total = fstatSync(fin).size;
    fout = openSync(dst, "wx", 0o600);
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    while (pos < total) {
      const n = readSync(fin, buf, 0, Math.min(CHUNK, total - pos), pos);
      if (n <= 0) throw new ImageError(`${src} became shorter while it was read`);
      hash.update(buf.subarray(0, n));
      if (!isZero(buf, n)) {
        let off = 0;
        while (off < n) off += writeSync(fout, buf, off, n - off, pos + off);
      }
      pos += n;
      progress?.(pos, total);
      await new Promise((r) => setImmediate(r));
      if (signal?.aborted) throw new ImageError("interrupted", 130);
    }
    ftruncateSync(fout, total);
    return hash.digest("hex");
  } finally {
    closeSync(fin);
    if (fout !== null) closeSync(fout);
  }
}

/** sha256 of bytes [start, end) of a file. */
export function hashRange(path: string, start: number, end: number): string {
  const fd = openSync(path, "r");
  try {
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, end - start)));
    for (let pos = start; pos < end; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
      if (n <= 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    return hash.digest("hex");
  } finally {
    closeSync(fd);
  }
}
