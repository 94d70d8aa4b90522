/**
 * What the device's small display shows for a confirmation (docs/hardware.md "Display"): who
 * asks (the calling qube), the operation, the key, the request code the host's notification
 * also shows, the digest prefix, and the state (press to approve, approved, denied, timed out).
 * Laid out for a 128x64 panel: 21 columns x 8 rows of 6x8 cells; longer text is cut with "~".
 * Pure. Must never: show a client-supplied string (the caller passes the device's own
 * description of the request), or a control character (shown as "?" by the font).
 */
import { Bitmap } from "./bitmap.ts";
import { CELL_HEIGHT, CELL_WIDTH } from "./font5x7.ts";

export type ScreenState = "waiting" | "approved" | "denied" | "timeout" | "conflict" | "idle";

export interface PromptScreen {
  readonly state: ScreenState;
  /** The calling qube (validated qube name). */
  readonly client?: string;
  /** PKSIGN, PKDECRYPT, sign, call, pair... */
  readonly operation?: string;
  /** The device's own description of the key. */
  readonly key?: string;
  /** The short request code shown in sys-remote's notification for the same request. */
  readonly code?: string;
  /** e.g. "sha256 B0A45CB3". */
  readonly digest?: string;
  /** The device's name, for the idle screen. */
  readonly device?: string;
}

const HEADLINE: Record<ScreenState, string> = {
  waiting: "PRESS TO APPROVE",
  approved: "APPROVED",
  denied: "DENIED",
  timeout: "TIMED OUT - DENIED",
  conflict: "TWO CALLERS - DENIED",
  idle: "qubes-air",
};

function fit(s: string, cols: number): string {
  const printable = [...s].map((c) => (c >= " " && c <= "~" ? c : "?"));
  return printable.length <= cols ? printable.join("") : `${printable.slice(0, cols - 1).join("")}~`;
}

/** Renders the screen for a panel of width x height pixels (128x64 for an SSD1306). */
export function renderPrompt(p: PromptScreen, width = 128, height = 64): Bitmap {
  const b = new Bitmap(width, height);
  const cols = Math.floor(width / CELL_WIDTH);
  const rows = Math.floor(height / CELL_HEIGHT);
  const line = (row: number, text: string, inverse = false) => {
    if (row < rows) b.text(0, row * CELL_HEIGHT, fit(text, cols), inverse);
  };
  if (p.state === "idle") {
    line(0, HEADLINE.idle, true);
    if (p.device) line(2, p.device);
    line(4, "no request waiting");
    return b;
  }
  // The headline as a lit band across the top, so the state reads from across the room.
  b.fill(0, 0, width, CELL_HEIGHT, true);
  b.text(0, 0, fit(HEADLINE[p.state], cols), true);
  line(1, `from ${p.client ?? "?"}`);
  line(2, `${p.operation ?? "?"}${p.code ? `  code ${p.code}` : ""}`);
  const key = p.key ?? "";
  line(3, key.slice(0, cols));
  line(4, key.slice(cols, 2 * cols));
  line(5, key.slice(2 * cols)); // cut with "~" past three rows
  if (p.digest) line(6, p.digest);
  if (p.code) line(7, `code in Qubes: ${p.code}`);
  return b;
}
