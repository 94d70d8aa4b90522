/**
 * What one filtered client line turns into (assuan-commands.ts, assuan-keys.ts), and the state
 * those handlers share: a reply the device gives itself, a line forwarded to one of gpg-agent's
 * sockets, or a confirmation to ask first.
 * Must never: build a forwarded line from anything but checked, re-formatted parts (fwd()
 * asserts the character set split-gpg2 allows in arguments).
 */
import { assert } from "../errors.ts";
import type { ConfirmRequest } from "./assuan-filter.ts";
import type { KeyEntry } from "./keyring.ts";

export interface CommandContext {
  readonly lookupKey: (keygrip: string) => KeyEntry | undefined;
  /** Every key of the device's keyring, in listing order (HAVEKEY --list is answered from it). */
  readonly listKeys: () => Iterable<KeyEntry>;
  readonly allowPrimaryKeys: boolean;
  /** The key of the last accepted SIGKEY/SETKEY, and the last SETHASH (cleared by PKSIGN). */
  key: KeyEntry | null;
  hash: { algo: number; name: string; hex: string } | null;
}

export type AgentSocket = "restricted" | "unrestricted";

/** Which agent status lines of a forwarded command reach the client ("all" when unset). */
export type StatusFilter = "served-keyinfo";

export type CommandStep =
  | { kind: "reply"; lines: readonly string[] }
  | {
      kind: "forward";
      line: string;
      socket: AgentSocket;
      /** Escaped SETKEYDESC text the device sends after the agent's OK. */
      setKeyDesc?: string;
      bye?: boolean;
      statusFilter?: StatusFilter;
    }
  | { kind: "confirm"; request: ConfirmRequest; line: string };

/** Any argument ever sent to the agent matches this (split-gpg2 treats a miss as a bug). */
const ARGUMENT_RE = /^[0-9A-Za-z_=. -]*$/;

export function fwd(cmd: string, args: string | null, socket: AgentSocket = "restricted") {
  assert(!args || ARGUMENT_RE.test(args), "BUG: a corrupt argument about to be sent to the agent");
  return { kind: "forward" as const, line: args ? `${cmd} ${args}` : cmd, socket };
}

export function reply(...lines: string[]): CommandStep {
  return { kind: "reply", lines };
}
