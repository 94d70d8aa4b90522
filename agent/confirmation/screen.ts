/**
 * Shows each confirmation on the device itself, besides the LED (docs/hardware.md "Display"):
 * on an SSD1306 panel through its framebuffer (hw/display/), and as one line on the console of a
 * screen attached to the board (HDMI, /dev/tty1), when the agent's config `display` asks for them.
 * What is shown is the ConfirmationManager's own request (the calling qube from the call, the
 * key from the device's keyring), the request code and the digest prefix, never client text.
 * Must never: throw into the manager (a panel or tty that fails only logs), or write to the
 * link's own tty.
 */
import * as fs from "node:fs";
import { ConfigError } from "../../core/errors.ts";
import { FramebufferDisplay, findPanel, framebufferInfo } from "../../hw/display/fb-display.ts";
import { type PromptScreen, renderPrompt } from "../../hw/display/prompt-screen.ts";
import type { Log } from "../log.ts";
import type { ConfirmationEvent } from "./manager.ts";

export function screenFor(e: ConfirmationEvent): PromptScreen {
  const r = e.request;
  return {
    state: e.kind,
    client: r.client,
    operation: r.pairing ? "pair" : r.operation,
    key: r.pairing ? `pairing code ${r.pairing.code}` : r.key,
    // The request code sys-remote also shows (journal, notification, the caller's stderr).
    code: e.code,
    ...(r.hashAlgo && r.digestPrefix ? { digest: `${r.hashAlgo} ${r.digestPrefix}` } : {}),
  };
}

/** The console line for an event: printable ASCII only. */
export function consoleLine(e: ConfirmationEvent): string {
  const s = screenFor(e);
  const head = {
    waiting: "PRESS TO APPROVE",
    approved: "approved",
    denied: "denied",
    timeout: "timed out",
    conflict: "conflict, denied",
  }[e.kind];
  const text = `qubes-air [${s.code}] ${head}: ${s.client} ${s.operation} ${s.key}${s.digest ? ` ${s.digest}` : ""}`;
  return `${text.replace(/[^\x20-\x7e]/g, "?")}\n`;
}

export interface ScreenConfig {
  /** "auto": the first SSD130x framebuffer; a path: that one; null: no panel. */
  readonly framebuffer: string | null;
  /** A text console to write one line per event to (e.g. /dev/tty1); null: none. */
  readonly console: string | null;
}

/** Opens what `display` names; a panel that is not there only logs (like a missing LED). */
export function openScreens(
  c: ScreenConfig,
  device: string,
  log: Log,
  graphicsRoot?: string,
  devDir?: string,
): PromptScreens {
  let panel: FramebufferDisplay | null = null;
  if (c.framebuffer) {
    try {
      const info =
        c.framebuffer === "auto"
          ? findPanel(graphicsRoot, devDir)
          : framebufferInfo(c.framebuffer, graphicsRoot);
      if (info) panel = new FramebufferDisplay(info, (why) => log("display-write-failed", { why }));
      else log("display-unavailable", { why: "no SSD130x framebuffer found (dtoverlay=ssd1306?)" });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      log("display-unavailable", { why: error.message });
    }
  }
  log("display", { panel: panel?.description ?? "none", console: c.console ?? "none" });
  return new PromptScreens({ panel, console: c.console, device, log });
}

/** A decision on the panel, before it shows the idle screen again. */
export const DECISION_SHOWN_MS = 5_000;

export class PromptScreens {
  constructor(
    private readonly o: {
      readonly panel: FramebufferDisplay | null;
      readonly console: string | null;
      readonly device: string;
      readonly log: Log;
      /** How long a decision stays on the panel (default DECISION_SHOWN_MS). */
      readonly decisionShownMs?: number;
    },
  ) {
    this.idle();
  }

  private toIdle: ReturnType<typeof setTimeout> | null = null;

  onEvent(e: ConfirmationEvent): void {
    if (this.toIdle) clearTimeout(this.toIdle);
    this.toIdle = null;
    this.o.panel?.show(renderPrompt(screenFor(e)));
    // A decision stays on screen for a while, then the panel goes back to idle: an old
    // "APPROVED" must not look like the answer to the next request.
    if (e.kind !== "waiting" && this.o.panel) {
      this.toIdle = setTimeout(() => this.idle(), this.o.decisionShownMs ?? DECISION_SHOWN_MS);
      this.toIdle.unref?.();
    }
    if (this.o.console) {
      let fd: number | null = null;
      try {
        fd = fs.openSync(
          this.o.console,
          fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_NOCTTY,
        );
        fs.writeSync(fd, consoleLine(e));
      } catch (error) {
        this.o.log("screen-console-failed", {
          console: this.o.console,
          code: (error as NodeJS.ErrnoException).code,
        });
      } finally {
        if (fd !== null) fs.closeSync(fd);
      }
    }
  }

  idle(): void {
    this.toIdle = null;
    this.o.panel?.show(renderPrompt({ state: "idle", device: this.o.device }));
  }
}
