/**
 * One pending verdict wait per input (hw/input.ts ApprovalInput.waitForVerdict).
 * Must never: hand a press that arrived before the wait to that wait.
 */
import type { Verdict } from "./input.ts";

/**
 * The waiting logic every approval input shares: at most one pending wait, a press that arrives
 * while nobody waits is dropped (never saved for a later request), an abort rejects the wait.
 */
export class PressQueue {
  private waiter: ((v: Verdict) => void) | null = null;
  ignored = 0;
  closed = false;

  constructor(private readonly description: string) {}

  get waiting(): boolean {
    return this.waiter !== null;
  }

  deliver(v: Verdict): boolean {
    const w = this.waiter;
    if (!w) {
      this.ignored++;
      return false;
    }
    this.waiter = null;
    w(v);
    return true;
  }

  wait(signal: AbortSignal): Promise<Verdict> {
    if (this.closed) return Promise.reject(new Error(`${this.description} is closed`));
    if (this.waiter) return Promise.reject(new Error(`${this.description}: a wait is already pending`));
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<Verdict>((resolve, reject) => {
      const onAbort = () => {
        this.waiter = null;
        reject(signal.reason);
      };
      this.waiter = (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
