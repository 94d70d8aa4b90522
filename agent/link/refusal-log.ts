/**
 * Refused handshakes, counted rather than logged one line each (docs/agent.md "Log"). Anyone who
 * can reach the listener can make the agent refuse a handshake, thousands a second from as many
 * addresses; a line per refusal would let them fill the journal and the disk. So per window of
 * REFUSALS_REPORT_MS the first REFUSALS_LOGGED_PER_WINDOW refusals get their own "refused" line
 * (a broken host is still diagnosed), the rest are counted by code, and when the window ends with
 * any uncounted, one "refused-summary" line gives the total, the counts per code and the DH work
 * the global budget paid for and refused in the window (agent/link/dh-budget.ts).
 * Must never: log more than REFUSALS_LOGGED_PER_WINDOW + 1 lines per window for refusals, or
 * drop a refusal from the counts.
 */
import type { Clock } from "../../core/session/duplex.ts";
import { REFUSALS_LOGGED_PER_WINDOW, REFUSALS_REPORT_MS } from "../../core/wire/limits.ts";
import type { Log, LogFields } from "../log.ts";
import type { DhBudget } from "./dh-budget.ts";

export interface RefusalLogOptions {
  readonly clock: Pick<Clock, "setTimer">;
  readonly budget?: DhBudget;
  readonly windowMs?: number;
  readonly logged?: number;
}

export class RefusalLog {
  private inWindow = 0;
  private readonly unlogged = new Map<string, number>();
  private windowOpen = false;
  private cancel: () => void = () => {};

  constructor(
    private readonly log: Log,
    private readonly o: RefusalLogOptions,
  ) {}

  /** One refused handshake; `fields.code` is its fixed code. */
  refused(fields: LogFields & { code: string }): void {
    if (!this.windowOpen) {
      this.windowOpen = true;
      this.cancel = this.o.clock.setTimer(this.o.windowMs ?? REFUSALS_REPORT_MS, () => this.endWindow());
    }
    if (this.inWindow++ < (this.o.logged ?? REFUSALS_LOGGED_PER_WINDOW)) {
      this.log("refused", fields);
      return;
    }
    this.unlogged.set(fields.code, (this.unlogged.get(fields.code) ?? 0) + 1);
  }

  /** Writes the summary of the current window now (the agent is stopping). */
  flush(): void {
    this.cancel();
    this.endWindow();
  }

  private endWindow(): void {
    this.windowOpen = false;
    const dh = this.o.budget?.drain();
    const unlogged = [...this.unlogged.values()].reduce((a, b) => a + b, 0);
    if (unlogged > 0) {
      this.log("refused-summary", {
        refused: this.inWindow,
        unlogged,
        ...Object.fromEntries(this.unlogged),
        dhSpent: dh?.spent,
        dhRefused: dh?.refused,
        windowMs: this.o.windowMs ?? REFUSALS_REPORT_MS,
      });
    }
    this.inWindow = 0;
    this.unlogged.clear();
  }
}
