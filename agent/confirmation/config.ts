/**
 * The `confirm` part of the agent's configuration (docs/agent.md "Confirmation"): which input
 * gives the device user's verdict on an `ask`, a split-GPG operation and a code pairing. Read as
 * strictly as the rest of the file: unknown keys and bad values name the key and the fix.
 *
 *   deny      nobody is there to ask: every confirmation is refused (the default)
 *   command   a program that exits 0 to approve
 *   button    the board's GPIO button (board detected, or named), LED indicator
 *   console   y/n on a local console tty (the Armory's alternative)
 *   hid       y/n on a USB HID key plugged into the device (the Armory's other alternative)
 *   socket    tests and demos only: "approve"/"deny" lines on a unix socket
 * Must never: accept an input the host can drive. (The socket kind's test switch is checked when
 * the daemon opens it, confirm-inputs.ts, so other commands can read such a config.)
 */
import { isAbsolute } from "node:path";
import type { BoardId } from "../../hw/boards.ts";

export type ConfirmConfig =
  | { readonly kind: "deny" }
  | { readonly kind: "command"; readonly argv: readonly string[]; readonly timeoutSeconds: number }
  | {
      readonly kind: "button";
      /** null: detected from the device tree. */
      readonly board: BoardId | null;
      readonly chipLabel?: string;
      readonly line?: string;
    }
  | { readonly kind: "console"; readonly tty: string; readonly board: BoardId | null }
  | {
      readonly kind: "hid";
      readonly vendorId: number;
      readonly productId: number;
      readonly path?: string;
      readonly board: BoardId | null;
    }
  | { readonly kind: "socket"; readonly path: string };

/** The environment switch without which `{"kind":"socket"}` is refused. */
export const SIMULATED_CONFIRM_ENV = "QUBES_AIR_SIMULATED_CONFIRM";

const BOARD_IDS: readonly BoardId[] = ["pi3", "pi4", "pi5", "zero2w", "armory-mk2", "generic"];
const KINDS = ["deny", "command", "button", "console", "hid", "socket"];

type Fail = (key: string, what: string) => never;
type UnknownKeys = (o: Record<string, unknown>, known: readonly string[], prefix: string) => void;

export function parseConfirm(v: unknown, fail: Fail, unknownKeys: UnknownKeys): ConfirmConfig {
  if (v === undefined) return { kind: "deny" };
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    fail("confirm", `must be an object {"kind": …}, kind one of ${KINDS.map((k) => `"${k}"`).join(", ")}`);
  }
  const o = v as Record<string, unknown>;
  const keys = (known: string[]) => unknownKeys(o, ["kind", ...known], "confirm.");
  const absPath = (key: string, x: unknown, example: string): string =>
    typeof x === "string" && isAbsolute(x)
      ? x
      : fail(`confirm.${key}`, `must be an absolute path, e.g. "${example}"`);
  const board = (): BoardId | null => {
    if (o.board === undefined || o.board === "auto") return null;
    if (!BOARD_IDS.includes(o.board as BoardId)) {
      fail("confirm.board", `must be "auto" (detect) or one of ${BOARD_IDS.map((b) => `"${b}"`).join(", ")}`);
    }
    return o.board as BoardId;
  };
  switch (o.kind) {
    case "deny":
      keys([]);
      return { kind: "deny" };
    case "command": {
      keys(["argv", "timeoutSeconds"]);
      const argv = o.argv;
      if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === "string")) {
        fail("confirm.argv", 'must be a non-empty array of strings, e.g. ["/usr/local/bin/confirm-button"]');
      }
      if (!isAbsolute((argv as string[])[0]!))
        fail("confirm.argv", "must start with an absolute program path");
      const timeout = o.timeoutSeconds ?? 60;
      if (typeof timeout !== "number" || !(timeout > 0 && timeout <= 3600)) {
        fail(
          "confirm.timeoutSeconds",
          "must be a number of seconds between 0 and 3600 (a timeout means deny)",
        );
      }
      return { kind: "command", argv: argv as string[], timeoutSeconds: timeout as number };
    }
    case "button": {
      keys(["board", "chipLabel", "line"]);
      const b = board();
      const name = (key: "chipLabel" | "line") =>
        o[key] === undefined
          ? undefined
          : typeof o[key] === "string" && /^[\w.:-]{1,64}$/.test(o[key] as string)
            ? (o[key] as string)
            : fail(
                `confirm.${key}`,
                'must be a GPIO chip label or line name, e.g. "pinctrl-bcm2711" / "GPIO17"',
              );
      const chipLabel = name("chipLabel");
      const line = name("line");
      if (b === "armory-mk2" && (!chipLabel || !line)) {
        fail("confirm.kind", 'the USB armory has no button: use {"kind":"console"} or {"kind":"hid",…}');
      }
      return { kind: "button", board: b, ...(chipLabel ? { chipLabel } : {}), ...(line ? { line } : {}) };
    }
    case "console":
      keys(["tty", "board"]);
      return {
        kind: "console",
        tty: o.tty === undefined ? "/dev/tty1" : absPath("tty", o.tty, "/dev/tty1"),
        board: board(),
      };
    case "hid": {
      keys(["vendorId", "productId", "path", "board"]);
      const path = o.path === undefined ? undefined : absPath("path", o.path, "/dev/hidraw0");
      const id = (key: "vendorId" | "productId"): number => {
        const x = o[key];
        if (x === undefined && path) return 0;
        const n =
          typeof x === "number"
            ? x
            : typeof x === "string" && /^(0x)?[0-9a-fA-F]{4}$/.test(x)
              ? Number.parseInt(x.replace(/^0x/, ""), 16)
              : -1;
        if (!Number.isInteger(n) || n < 0 || n > 0xffff) {
          fail(
            `confirm.${key}`,
            'must be the USB id as 4 hex digits (e.g. "1209", see lsusb) or a number; or give "path"',
          );
        }
        return n;
      };
      return {
        kind: "hid",
        vendorId: id("vendorId"),
        productId: id("productId"),
        board: board(),
        ...(path ? { path } : {}),
      };
    }
    case "socket":
      keys(["path"]);
      return { kind: "socket", path: absPath("path", o.path, "/run/qubes-air/confirm.sock") };
    default:
      return fail("confirm.kind", `must be one of ${KINDS.map((k) => `"${k}"`).join(", ")}`);
  }
}

/**
 * `confirmTimeoutSeconds` (1..120, default 30), `approvalWindowSeconds` (0..60, default 0) and
 * `confirmConflictWindowSeconds` (0..10, default 1; agent/confirmation/manager.ts "Conflicts").
 */
export function parseConfirmTimes(
  o: Record<string, unknown>,
  fail: Fail,
): { confirmTimeoutSeconds: number; approvalWindowSeconds: number; confirmConflictWindowSeconds: number } {
  const timeout = o.confirmTimeoutSeconds ?? 30;
  if (typeof timeout !== "number" || !(timeout >= 1 && timeout <= 120)) {
    fail("confirmTimeoutSeconds", "must be a number of seconds from 1 to 120 (no answer in time means deny)");
  }
  const window = o.approvalWindowSeconds ?? 0;
  if (typeof window !== "number" || !(window >= 0 && window <= 60)) {
    fail(
      "approvalWindowSeconds",
      "must be a number of seconds from 0 (ask every time) to 60 (an approval then covers the same client, operation and key for that long)",
    );
  }
  const conflict = o.confirmConflictWindowSeconds ?? 1;
  if (typeof conflict !== "number" || !(conflict >= 0 && conflict <= 10)) {
    fail(
      "confirmConflictWindowSeconds",
      "must be a number of seconds from 0 to 10 (after an approval, a request from another client this soon is refused as a conflict)",
    );
  }
  return {
    confirmTimeoutSeconds: timeout as number,
    approvalWindowSeconds: window as number,
    confirmConflictWindowSeconds: conflict as number,
  };
}
