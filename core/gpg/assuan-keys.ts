/**
 * The key queries (HAVEKEY, KEYINFO) and card commands (SCD) of split-gpg2, answered the same
 * whatever the device's gpg-agent version (docs/split-gpg.md "GnuPG 2.2 and 2.4"):
 *
 * - KEYINFO <keygrip>: gpg 2.4 asks it before signing and for `-K`; gpg-agent 2.2 refuses it on
 *   the restricted socket (Forbidden), 2.4 answers it. For a key the device serves it goes to
 *   the normal socket, which answers on both; the keygrip is one we re-formatted.
 * - HAVEKEY --list[=N]: gpg 2.4's fast path for -K; 2.2 has no list mode. Answered here, from
 *   the device's keyring, in gpg-agent 2.4's format (20-byte keygrips as data, "Result
 *   truncated" past N).
 * - HAVEKEY <keygrips>: only the served ones are asked about.
 * - KEYINFO --list: the normal socket's answer, with the lines of keys not served dropped.
 * - SCD: the read-only queries gpg sends on its own get what an agent without a card daemon
 *   answers; anything else is a violation (the attack class it was before).
 *
 * Must never: reveal anything about a keygrip the device does not serve (a primary key unless
 * allowPrimaryKeys, another key the agent holds, a key that does not exist): such a keygrip
 * gets exactly the answer of an agent that lacks it, and the agent is not asked.
 */
import {
  dataLines,
  ERR_NO_SCDAEMON_LINE,
  ERR_NO_SECKEY_LINE,
  ERR_NOT_FOUND_LINE,
  ERR_TRUNCATED_LINE,
  sanitizeInt,
} from "./assuan.ts";
import { type CommandContext, type CommandStep, fwd, reply } from "./assuan-step.ts";
import type { KeyEntry } from "./keyring.ts";
import { Violation } from "./violation.ts";

const KEYGRIP_RE = /^[0-9A-F]{40}$/;

/** HAVEKEY/KEYINFO/SIGKEY/SETKEY arguments: `--list[=1..1000]` (if allowed) or keygrips. */
export function keygripArgs(cmd: string, args: string | undefined, min: number, max: number, list: boolean) {
  if (args === undefined) throw new Violation("bad-arguments", cmd);
  if (list && args.startsWith("--list")) {
    if (args === "--list") return { list: true as const, limit: null, text: "--list" };
    if (args[6] !== "=") throw new Violation("bad-arguments", cmd);
    const n = sanitizeInt(args.slice(7), 1, 1000);
    if (n === null) throw new Violation("bad-arguments", cmd);
    return { list: true as const, limit: n, text: `--list=${n}` };
  }
  const grips = args.split(" ");
  if (grips.length < min || grips.length > max) throw new Violation("bad-arguments", cmd);
  for (const g of grips) if (!KEYGRIP_RE.test(g)) throw new Violation("bad-keygrip", cmd);
  return { list: false as const, grips, text: grips.join(" ") };
}

/** A key the device serves: in its keyring, and not a primary key (unless allowed). */
export function servedKey(ctx: CommandContext, keygrip: string): KeyEntry | undefined {
  const key = ctx.lookupKey(keygrip);
  return key && (!key.isPrimary || ctx.allowPrimaryKeys) ? key : undefined;
}

export function haveKey(args: string | undefined, ctx: CommandContext): CommandStep {
  const k = keygripArgs("HAVEKEY", args, 1, 200, true);
  if (k.list) return haveKeyList(k.limit, ctx);
  const served = k.grips.filter((g) => servedKey(ctx, g));
  // The agent's answer when it holds none of them; it need not hear of the others at all.
  if (served.length === 0) return reply(ERR_NO_SECKEY_LINE);
  return fwd("HAVEKEY", served.join(" "));
}

/** gpg-agent 2.4's list mode, for the served keys whose secret the device holds. */
function haveKeyList(limit: number | null, ctx: CommandContext): CommandStep {
  const grips: string[] = [];
  for (const key of ctx.listKeys()) {
    if (!key.secretHere || grips.includes(key.keygrip)) continue;
    if (servedKey(ctx, key.keygrip) === key) grips.push(key.keygrip);
  }
  const shown = limit === null ? grips : grips.slice(0, limit);
  const bytes = new Uint8Array(shown.length * 20);
  shown.forEach((g, i) => {
    for (let j = 0; j < 20; j++) bytes[i * 20 + j] = Number.parseInt(g.slice(j * 2, j * 2 + 2), 16);
  });
  const end = shown.length < grips.length ? ERR_TRUNCATED_LINE : "OK";
  return reply(...dataLines(bytes), end);
}

export function keyInfo(args: string | undefined, ctx: CommandContext): CommandStep {
  const k = keygripArgs("KEYINFO", args, 1, 1, true);
  if (k.list) return { ...fwd("KEYINFO", k.text, "unrestricted"), statusFilter: "served-keyinfo" };
  const grip = k.grips[0]!;
  if (!servedKey(ctx, grip)) return reply(ERR_NOT_FOUND_LINE);
  return fwd("KEYINFO", grip, "unrestricted");
}

/** For KEYINFO --list: whether an agent status line may reach the client. */
export function keyinfoLineServed(text: string, ctx: CommandContext): boolean {
  const m = /^S KEYINFO ([0-9A-F]{40}) /.exec(text);
  return m !== null && servedKey(ctx, m[1]!) !== undefined;
}

/** The card queries gpg 2.2/2.4 send by themselves (before an operation, --card-status). */
const SCD_QUERIES = new Set(["SERIALNO", "SERIALNO openpgp", "GETINFO version"]);

export function scd(args: string | undefined): CommandStep {
  if (args === undefined || !SCD_QUERIES.has(args)) throw new Violation("bad-arguments", "SCD");
  return reply(ERR_NO_SCDAEMON_LINE);
}
