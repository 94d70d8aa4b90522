/**
 * Progress for the flasher on stderr: bytes, percent, rate and ETA. On a terminal one line is
 * redrawn with \r at most every 250 ms; otherwise (logs, pipes) a line is printed every 10%.
 * formatProgress is pure.
 */
import { formatSize } from "./block-devices.ts";
import type { Progress } from "./flash-write.ts";

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** "writing 1.2 GB / 3.5 GB  34%  45.3 MB/s  ETA 0:52" */
export function formatProgress(p: Progress, elapsedMs: number): string {
  const pct = p.total > 0 ? Math.floor((p.done / p.total) * 100) : 100;
  const rate = elapsedMs > 0 ? p.done / (elapsedMs / 1000) : 0;
  const eta = rate > 0 ? (p.total - p.done) / rate : Number.NaN;
  const verb = p.phase === "write" ? "writing" : "verifying";
  return `${verb} ${formatSize(p.done)} / ${formatSize(p.total)}  ${pct}%  ${formatSize(Math.round(rate))}/s  ETA ${formatDuration(eta)}`;
}

export class ProgressReporter {
  private phase: Progress["phase"] | null = null;
  private phaseStart: number;
  private lastUpdate: number;
  private lastDraw = 0;
  private lastDecile = -1;
  private drawn = false;

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
    private readonly now: () => number = () => performance.now(),
  ) {
    // The first phase starts now (the reporter is made when the write starts); later phases
    // start when the previous one reported its last progress.
    this.phaseStart = this.lastUpdate = now();
  }

  update(p: Progress): void {
    const t = this.now();
    if (p.phase !== this.phase) {
      this.end();
      this.phase = p.phase;
      this.phaseStart = this.lastUpdate;
      this.lastDecile = -1;
      this.lastDraw = Number.NEGATIVE_INFINITY;
    }
    this.lastUpdate = t;
    const line = formatProgress(p, t - this.phaseStart);
    const finished = p.done >= p.total;
    if (this.tty) {
      if (finished || t - this.lastDraw >= 250) {
        this.write(`\r${line}\x1b[K`);
        this.lastDraw = t;
        this.drawn = true;
      }
      return;
    }
    const decile = Math.floor((p.done / Math.max(1, p.total)) * 10);
    if (decile !== this.lastDecile) {
      this.lastDecile = decile;
      this.write(`${line}\n`);
    }
  }

  /** Ends a redrawn line (before other output). */
  end(): void {
    if (this.tty && this.drawn) this.write("\n");
    this.drawn = false;
  }
}
