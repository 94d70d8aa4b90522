/**
 * What a physical confirmation needs from the hardware, whatever the board: an input that
 * gives the user's verdict (a GPIO button on a Pi, a USB HID key or the device's own console on
 * the Armory, a simulated button in tests) and an indicator that shows we are waiting (LEDs).
 * Implementations live beside this file; the confirmation manager (agent/confirmation/) uses
 * only these interfaces.
 * Must never: take a verdict from the host or the link; only local, physical input counts.
 */

export type Verdict = "approve" | "deny";

export interface ApprovalInput {
  /** A short label for logs, e.g. "gpio pinctrl-rp1/GPIO17" or "simulated". */
  readonly description: string;
  /**
   * Waits for the next deliberate user action after this call (earlier presses never count):
   * a short press approves, a long press (or the backend's deny gesture) denies. Rejects with
   * the signal's reason when aborted (timeout). Only one wait may be pending at a time.
   */
  waitForVerdict(signal: AbortSignal): Promise<Verdict>;
  close(): void;
}

export type IndicatorPattern = "idle" | "waiting" | "approved" | "denied" | "conflict";

export interface Indicator {
  readonly description: string;
  /** Shows a pattern until the next call; must not throw (a missing LED only logs). */
  show(pattern: IndicatorPattern): void;
  close(): void;
}
