/**
 * split-gpg2's command table (reference/split-gpg.md §2), one client line at a time: each
 * allowed command with its exact argument rules, the fake replies, and the one D line a
 * CIPHERTEXT inquiry may carry. Used by assuan-filter.ts, which owns the connection state.
 * Must never: build a forwarded line from anything but checked, re-formatted parts.
 */
import {
  ASSUAN_LINELENGTH,
  ERR_NOT_SUPPORTED_LINE,
  ERR_UNKNOWN_IPC_LINE,
  escapeData,
  extractArgs,
  fromBinary,
  line,
  percentPlusEscape,
  sanitizeInt,
  unescapeData,
} from "./assuan.ts";
import type { ConfirmRequest } from "./assuan-filter.ts";
import { haveKey, keygripArgs, keyInfo, scd } from "./assuan-keys.ts";
import { type CommandContext, type CommandStep, fwd, reply } from "./assuan-step.ts";
import { keyDescription } from "./keyring.ts";
import { checkEncVal, parseSexp, SexpError, serializeSexp } from "./sexp.ts";
import { Violation } from "./violation.ts";

export type { CommandContext, CommandStep } from "./assuan-step.ts";
export { Violation, type ViolationCode } from "./violation.ts";

const HEX_RE = /^[0-9A-F]+$/;
const NONCE_RE = /^[0-9A-F]{24}$/;

export const HASH_ALGOS: ReadonlyMap<number, { name: string; hexLength: number }> = new Map([
  [2, { name: "sha1", hexLength: 40 }],
  [3, { name: "rmd160", hexLength: 40 }],
  [8, { name: "sha256", hexLength: 64 }],
  [9, { name: "sha384", hexLength: 96 }],
  [10, { name: "sha512", hexLength: 128 }],
  [11, { name: "sha224", hexLength: 56 }],
]);

const FAKE_OK_OPTIONS = new Set([
  "ttyname",
  "ttytype",
  "display",
  "lc-ctype",
  "lc-messages",
  "putenv",
  "allow-pinentry-notify",
  // Not "xauthority": split-gpg2 1.1.11 filters it (QubesOS/qubes-issues#10340 asks to fake it;
  // until upstream does, a client that sends it must see the same refusal as with stock split-gpg2).
]);

const GETINFO_ALLOWED = new Set(["version", "restricted", "s2k_count"]);

function noArgs(cmd: string, args: string | undefined): void {
  if (args !== undefined) throw new Violation("bad-arguments", cmd);
}

function selectKey(cmd: string, args: string | undefined, ctx: CommandContext): CommandStep {
  const { text } = keygripArgs(cmd, args, 1, 1, false);
  const key = ctx.lookupKey(text);
  if (!key) throw new Violation("unknown-key", cmd);
  if (key.isPrimary && !ctx.allowPrimaryKeys) throw new Violation("primary-key", cmd);
  ctx.key = key;
  ctx.hash = null;
  const desc = percentPlusEscape(new TextEncoder().encode(keyDescription(key)));
  return { ...fwd(cmd, text), setKeyDesc: desc };
}

/** One client line while no inquiry is open. Throws Violation when it is filtered. */
export function handleCommand(text: string, ctx: CommandContext): CommandStep {
  const [cmd, args] = extractArgs(text);
  switch (cmd) {
    case "RESET":
      noArgs(cmd, args);
      ctx.key = null;
      ctx.hash = null;
      return fwd(cmd, null);
    case "BYE":
      noArgs(cmd, args);
      return { ...fwd(cmd, null), bye: true };
    case "NOP":
    case "SETKEYDESC": // the device sends its own after SIGKEY/SETKEY; the client's text is ignored
      return reply("OK");
    case "AGENT_ID":
      return reply(ERR_UNKNOWN_IPC_LINE);
    case "OPTION":
      return option(args);
    case "HAVEKEY":
      return haveKey(args, ctx);
    case "KEYINFO":
      return keyInfo(args, ctx);
    case "SIGKEY":
    case "SETKEY":
      return selectKey(cmd, args, ctx);
    case "SETHASH":
      return setHash(args, ctx);
    case "PKSIGN": {
      if (args !== undefined && (!args.startsWith("-- ") || !NONCE_RE.test(args.slice(3)))) {
        throw new Violation("bad-nonce", cmd);
      }
      if (!ctx.key) throw new Violation("no-key-set", cmd);
      if (!ctx.hash) throw new Violation("no-hash-set", cmd);
      const request: ConfirmRequest = { operation: "PKSIGN", key: ctx.key, hash: ctx.hash };
      ctx.hash = null; // one approval signs one digest: a second PKSIGN needs a new SETHASH
      return { kind: "confirm", request, line: fwd(cmd, args ?? null).line };
    }
    case "PKDECRYPT":
      noArgs(cmd, args);
      if (!ctx.key) throw new Violation("no-key-set", cmd);
      return { kind: "confirm", request: { operation: "PKDECRYPT", key: ctx.key }, line: cmd };
    case "GETINFO":
      if (args === undefined || !GETINFO_ALLOWED.has(args)) throw new Violation("bad-arguments", cmd);
      return fwd(cmd, args);
    case "SCD":
      return scd(args);
    default:
      throw new Violation("command-not-allowed");
  }
}

function option(args: string | undefined): CommandStep {
  if (!args) throw new Violation("bad-arguments", "OPTION");
  if (args === "pinentry-mode=ask") return reply("OK");
  const [name, value] = extractArgs(args, "=");
  if (FAKE_OK_OPTIONS.has(name)) return reply("OK");
  if (name === "pinentry-mode") return reply(ERR_NOT_SUPPORTED_LINE);
  if (name === "agent-awareness" && value === "2.1.0") return fwd("OPTION", "agent-awareness=2.1.0");
  throw new Violation("option-not-allowed", "OPTION");
}

function setHash(args: string | undefined, ctx: CommandContext): CommandStep {
  if (args === undefined) throw new Violation("bad-arguments", "SETHASH");
  const [algText, hex] = extractArgs(args);
  if (hex === undefined) throw new Violation("bad-arguments", "SETHASH");
  const algo = sanitizeInt(algText, 2, 255);
  const spec = algo === null ? undefined : HASH_ALGOS.get(algo);
  if (algo === null || !spec) throw new Violation("bad-hash", "SETHASH");
  if (hex.length !== spec.hexLength || !HEX_RE.test(hex)) throw new Violation("bad-hash", "SETHASH");
  ctx.hash = { algo, name: spec.name, hex };
  return fwd("SETHASH", `${algo} ${hex}`);
}

export interface InquireStep {
  readonly agentLine: Uint8Array;
  readonly data: boolean;
  readonly end: boolean;
}

/**
 * One client line inside an inquiry. CIPHERTEXT takes exactly one D line (parsed, checked as an
 * enc-val and re-serialised) and then END; PINENTRY_LAUNCHED takes only END.
 */
export function handleInquireLine(bytes: Uint8Array, name: string, seenData: boolean): InquireStep {
  const sp = bytes.indexOf(0x20);
  const cmd = String.fromCharCode(...bytes.subarray(0, sp < 0 ? Math.min(bytes.length, 16) : sp));
  if (cmd === "END") {
    if (sp >= 0) throw new Violation("bad-arguments", "END");
    if (name === "CIPHERTEXT" && !seenData) throw new Violation("inquire-no-data", "END");
    return { agentLine: line("END"), data: false, end: true };
  }
  if (cmd === "D" && sp === 1 && name === "CIPHERTEXT") {
    if (seenData) throw new Violation("inquire-second-data", "D");
    let canonical: Uint8Array;
    try {
      const sexp = parseSexp(unescapeData(bytes.subarray(2)));
      checkEncVal(sexp);
      canonical = serializeSexp(sexp);
    } catch (e) {
      if (e instanceof SexpError) throw new Violation("bad-ciphertext", "D");
      throw e;
    }
    const escaped = escapeData(canonical);
    if (escaped.length + 2 > ASSUAN_LINELENGTH) throw new Violation("bad-ciphertext", "D");
    const out = new Uint8Array(escaped.length + 3);
    out.set(fromBinary("D "), 0);
    out.set(escaped, 2);
    out[out.length - 1] = 10;
    return { agentLine: out, data: true, end: false };
  }
  throw new Violation("inquire-not-allowed");
}
