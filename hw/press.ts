/**
 * Turns button edges into a verdict: a press (the line going active) followed by its release. A
 * short press (< longPressMs) approves, a long one denies. Durations come from the kernel's event
 * timestamps, so polling or pipe latency never changes the verdict. Pure; the GPIO backends feed
 * it. Must never: count a release whose press it did not see (the button was already held when
 * the wait began), or a bounce shorter than minPressMs.
 */
import type { Verdict } from "./input.ts";

export const LONG_PRESS_MS = 1500;
/** Contact bounce shorter than this is not a press (on top of the kernel's debounce). */
export const MIN_PRESS_MS = 30;

export type ButtonEdge = "press" | "release";

export class PressClassifier {
  private pressedAt: bigint | null = null;

  constructor(
    private readonly longPressMs = LONG_PRESS_MS,
    private readonly minPressMs = MIN_PRESS_MS,
  ) {}

  /** Forgets a press in progress (a new wait starts from a released button). */
  reset(): void {
    this.pressedAt = null;
  }

  /** Feeds one edge with its timestamp in nanoseconds; returns a verdict when a press completes. */
  feed(edge: ButtonEdge, timestampNs: bigint): Verdict | null {
    if (edge === "press") {
      // A second press edge without a release (a lost event) restarts the press.
      this.pressedAt = timestampNs;
      return null;
    }
    const start = this.pressedAt;
    this.pressedAt = null;
    if (start === null || timestampNs < start) return null;
    const ms = Number((timestampNs - start) / 1_000_000n);
    if (ms < this.minPressMs) return null;
    return ms < this.longPressMs ? "approve" : "deny";
  }
}

/** Edge direction to press/release: a button to ground with a pull-up is active-low. */
export function edgeToButton(edge: "rising" | "falling", activeLow: boolean): ButtonEdge {
  return (edge === "falling") === activeLow ? "press" : "release";
}
