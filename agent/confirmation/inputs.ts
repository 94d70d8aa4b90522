/**
 * Opens the confirmation input and indicator that the agent's `confirm` configuration names
 * (config-confirm.ts), once at start-up, for the one ConfirmationManager:
 *
 *   deny, command     agent-side inputs (confirm.ts); no indicator
 *   button            the board's GPIO button (hw/select.ts), the board's LED (hw/leds.ts)
 *   console, hid      the Armory's alternatives (a local console key, a USB HID key), the LED
 *   socket            hw/simulated.ts SocketButton: tests and demos only
 *
 * Hardware that cannot be opened (no GPIO chip, the HID key unplugged, node-hid missing) does
 * not stop the agent: it logs `confirm-unavailable` with the reason, every confirmation is
 * denied, and each new request tries to open the input again (so plugging the key in helps).
 * Must never: fall back to approving, or to an input the host can drive (the link's own tty is
 * refused as a console).
 */
import { ConfigError } from "../../core/errors.ts";
import { BOARDS, type BoardProfile, detectBoard } from "../../hw/boards.ts";
import type { Indicator, Verdict } from "../../hw/input.ts";
import { nullIndicator } from "../../hw/leds.ts";
import { type InputConfig, openApprovalInput, openIndicator } from "../../hw/select.ts";
import type { Config } from "../config.ts";
import type { Log } from "../log.ts";
import { SIMULATED_CONFIRM_ENV } from "./config.ts";
import { CommandInput, DenyInput } from "./confirmer.ts";
import type { ConfirmationRequest, ConfirmInput } from "./manager.ts";

export interface OpenedConfirmation {
  readonly input: ConfirmInput;
  readonly indicator: Indicator;
}

export interface ConfirmInputDeps {
  /** The board (default: detected from /proc/device-tree). */
  readonly detect?: () => BoardProfile;
  /** /sys/class/leds (tests). */
  readonly ledsRoot?: string;
}

export async function openConfirmation(
  config: Config,
  log: Log,
  deps: ConfirmInputDeps = {},
): Promise<OpenedConfirmation> {
  const c = config.confirm;
  switch (c.kind) {
    case "deny":
      return { input: new DenyInput(), indicator: nullIndicator("no confirmation input") };
    case "command":
      return {
        input: new CommandInput(c.argv, c.timeoutSeconds * 1000),
        indicator: nullIndicator("a command confirms"),
      };
    case "socket": {
      if (process.env[SIMULATED_CONFIRM_ENV] !== "1") {
        throw new ConfigError(
          `${config.path}: "confirm.kind" "socket" is a simulated button for tests and demos only; ` +
            `the agent refuses it unless it runs with ${SIMULATED_CONFIRM_ENV}=1`,
        );
      }
      log("confirm-simulated", { path: c.path, why: "the socket button is for tests and demos only" });
      const input = await ReopeningInput.open(
        () => openApprovalInput(BOARDS.generic, { kind: "simulated-socket", path: c.path }),
        log,
      );
      return { input, indicator: nullIndicator("simulated") };
    }
    default: {
      const board = c.board ? BOARDS[c.board] : (deps.detect ?? (() => detectBoard().profile))();
      const selected = inputConfig(c);
      const linkTtys = config.listen.tty ? [config.listen.tty] : [];
      const input = await ReopeningInput.open(() => openApprovalInput(board, selected, { linkTtys }), log);
      const indicator = openIndicator(board, {
        ...(deps.ledsRoot ? { root: deps.ledsRoot } : {}),
        onError: (why) => log("led-unavailable", { why }),
      });
      log("confirm-board", { board: board.id, indicator: indicator.description });
      return { input, indicator };
    }
  }
}

function inputConfig(c: Exclude<Config["confirm"], { kind: "deny" | "command" | "socket" }>): InputConfig {
  switch (c.kind) {
    case "button":
      // Always the GPIO button (the board's, or the configured line); never "auto", which on a
      // board without a button would fall back to a console.
      return {
        kind: "gpio",
        ...(c.chipLabel ? { chipLabel: c.chipLabel } : {}),
        ...(c.line ? { line: c.line } : {}),
      };
    case "console":
      return { kind: "console", tty: c.tty };
    case "hid":
      return {
        kind: "hid",
        vendorId: c.vendorId,
        productId: c.productId,
        ...(c.path ? { path: c.path } : {}),
      };
  }
}

/** An input opened at start-up, and again on the next request whenever it is not open. */
export class ReopeningInput implements ConfirmInput {
  private inner: {
    description: string;
    waitForVerdict(s: AbortSignal): Promise<Verdict>;
    close(): void;
  } | null = null;
  private closed = false;

  private constructor(
    private readonly opener: () => Promise<ReopeningInput["inner"] & object>,
    private readonly log: Log,
  ) {}

  static async open(
    opener: () => Promise<ReopeningInput["inner"] & object>,
    log: Log,
  ): Promise<ReopeningInput> {
    const r = new ReopeningInput(opener, log);
    await r.ensure().catch(() => {});
    return r;
  }

  get description(): string {
    return this.inner?.description ?? "unavailable";
  }

  async waitForVerdict(signal: AbortSignal, _request: ConfirmationRequest): Promise<Verdict> {
    const inner = await this.ensure();
    try {
      return await inner.waitForVerdict(signal);
    } catch (e) {
      // Not a timeout: the input broke (a key unplugged). Open it afresh next time.
      if (!signal.aborted && this.inner === inner) {
        inner.close();
        this.inner = null;
      }
      throw e;
    }
  }

  close(): void {
    this.closed = true;
    this.inner?.close();
    this.inner = null;
  }

  private async ensure() {
    if (this.inner) return this.inner;
    if (this.closed) throw new Error("confirmation input closed");
    try {
      this.inner = await this.opener();
      this.log("confirm-input", { input: this.inner.description });
      return this.inner;
    } catch (e) {
      this.log("confirm-unavailable", { why: e instanceof Error ? e.message : String(e) });
      throw e;
    }
  }
}
