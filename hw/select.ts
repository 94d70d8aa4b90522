/**
 * Picks the confirmation input and indicator for a board and the agent's configuration: the
 * board's button when it has one, else its configured alternative (a console key or a USB HID
 * key on the Armory). The agent's confirmation manager calls these and then uses only the
 * hw/input.ts interfaces. Must never: pick an input the host can drive.
 */
import type { BoardProfile } from "./boards.ts";
import { ConsoleInput } from "./console-input.ts";
import { type GpioBackend, openGpioButton } from "./gpio-button.ts";
import { HidInput } from "./hid-input.ts";
import type { ApprovalInput, Indicator } from "./input.ts";
import { type LedOptions, openLedIndicator } from "./leds.ts";
import { SocketButton } from "./simulated.ts";

export type InputConfig =
  | { kind: "auto" }
  | { kind: "gpio"; chipLabel?: string; line?: string; activeLow?: boolean; backend?: GpioBackend }
  | { kind: "console"; tty?: string }
  | { kind: "hid"; vendorId: number; productId: number; path?: string }
  /** Tests only: presses arrive as lines on a unix socket. */
  | { kind: "simulated-socket"; path: string };

export interface SelectOptions {
  /** The link's own serial device(s): never usable as a confirmation console. */
  linkTtys?: readonly string[];
  /** The console for boards whose alternative is "console"; default /dev/tty1. */
  consoleTty?: string;
  longPressMs?: number;
}

export async function openApprovalInput(
  board: BoardProfile,
  config: InputConfig,
  options: SelectOptions = {},
): Promise<ApprovalInput> {
  const forbidden = options.linkTtys ?? [];
  switch (config.kind) {
    case "auto": {
      const button = board.buttons[0];
      if (button) return openGpioButton(button, { longPressMs: options.longPressMs });
      if (board.approvalAlternative === "console")
        return ConsoleInput.open({ tty: options.consoleTty, forbidden });
      throw new Error(
        `${board.name} has no button; configure a confirmation input (console tty or USB HID key)`,
      );
    }
    case "gpio": {
      const base = board.buttons[0];
      const chipLabel = config.chipLabel ?? base?.chipLabel;
      const line = config.line ?? base?.line;
      if (!chipLabel || !line) throw new Error(`${board.name} has no default button: set chipLabel and line`);
      return openGpioButton(
        { chipLabel, line, activeLow: config.activeLow ?? base?.activeLow ?? true },
        { backend: config.backend, longPressMs: options.longPressMs },
      );
    }
    case "console":
      return ConsoleInput.open({ tty: config.tty, forbidden });
    case "hid":
      return HidInput.open({ vendorId: config.vendorId, productId: config.productId, path: config.path });
    case "simulated-socket":
      return SocketButton.listen(config.path);
  }
}

export function openIndicator(board: BoardProfile, options: LedOptions = {}): Indicator {
  return openLedIndicator(board.leds, options);
}
