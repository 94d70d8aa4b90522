/**
 * split-gpg v1's server-side option check (upstream parse_options, reference §1), as a parser
 * that returns a structured request instead of the client's strings:
 *
 * - every argument printable UTF-8; getopt_long semantics with "+" (no permutation), exact long
 *   names only (an abbreviation is refused), `--opt=v` and `--opt v`, bundled short options;
 * - only allowed options; recognised-but-refused ones fail after consuming their argument;
 * - one kind of command (file or user-ID); positionals: user IDs, or at most a lone "-", plus
 *   `--verify /dev/fd/N` (N >= 3); a positional starting with "-" only after "--";
 * - `-o` only "-"; status/logger/attribute fds decimal, no leading zero, < 1024, each once,
 *   never the same fd in both directions; at most 15 fds per direction;
 * - the three sub-option lists re-emitted canonically.
 * Must never: put a client-supplied string in an error message.
 */

import { ProtocolError } from "../errors.ts";
import {
  EXPORT_OPTIONS,
  LIST_OPTIONS,
  SubOptionError,
  sanitizeOptionList,
  VERIFY_OPTIONS,
} from "./v1-sublists.ts";
import { COMMANDS, LONG_OPTIONS, type OptionSpec, SHORT_OPTIONS } from "./v1-table.ts";
import { MAX_FDS_PER_DIRECTION } from "./v1-wire.ts";

export const MAX_FD_VALUE = 1024;

export type V1OptionReason =
  | "bad-fd"
  | "too-many-fds"
  | "fd-both-directions"
  | "fd-option-twice"
  | "not-printable"
  | "forbidden-option"
  | "conflicting-commands"
  | "output-not-stdout"
  | "bad-sub-option"
  | "abbreviated-option"
  | "unrecognized-option"
  | "missing-argument"
  | "unexpected-argument"
  | "invalid-short-option"
  | "dash-positional"
  | "bad-verify-signature"
  | "positional-not-allowed";

/**
 * A refused request: a ProtocolError "gpg-v1-options" with our finer reason. `message` uses
 * only our own words and table names.
 */
export class V1OptionError extends ProtocolError {
  constructor(
    readonly reason: V1OptionReason,
    detail: string,
  ) {
    super("gpg-v1-options", detail);
  }
}

export interface ParsedOption {
  readonly id: string;
  readonly value?: string;
}

export interface V1Request {
  /** Allowed options in command-line order, by id, with checked or canonical values. */
  readonly options: readonly ParsedOption[];
  /** Command ids given, in order (duplicates kept once). */
  readonly commands: readonly string[];
  /** User IDs for a user-ID command (passed after "--"). */
  readonly userIds: readonly string[];
  /** A lone "-" was given as the data file. */
  readonly dashInput: boolean;
  /** The client's fd of `--verify /dev/fd/N`, else null. */
  readonly verifySigFd: number | null;
  /** Client-to-server fd list: [0, signature fd?]. Frames index it. */
  readonly inputFds: readonly number[];
  /** Server-to-client fd list: [1, 2, status/logger/attribute fds in order, deduplicated]. */
  readonly outputFds: readonly number[];
}

const FD_OPTIONS = new Set(["status-fd", "logger-fd", "attribute-fd"]);
const SUBLISTS = new Map([
  ["list-options", LIST_OPTIONS],
  ["verify-options", VERIFY_OPTIONS],
  ["export-options", EXPORT_OPTIONS],
]);

/**
 * Upstream's sanitize_string_from_vm exactly: every byte below 0x80 must be 0x20-0x7E, and the
 * rest must be well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points above
 * U+10FFFF). C1 controls (U+0080-U+009F, bytes C2 80-C2 9F) are well-formed, so upstream passes
 * them to gpg and so do we: a client's user ID or comment may carry them. They never reach a
 * terminal from here: everything the device shows or logs goes through displaySafe/printable.
 */
export function isPrintableUtf8(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b < 0x20 || b === 0x7f) return false;
  try {
    new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return false;
  }
  return true;
}

/** validate_fd_argument: decimal, no leading zero, at most 4 digits, below 1024. */
export function parseFdArgument(text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new V1OptionError("bad-fd", "invalid fd argument: only decimal numbers");
  if (text.length > 1 && text[0] === "0")
    throw new V1OptionError("bad-fd", "leading zeroes in an fd argument");
  const n = Number(text);
  if (text.length > 4 || n >= MAX_FD_VALUE)
    throw new V1OptionError("bad-fd", `fd value too big (limit ${MAX_FD_VALUE - 1})`);
  return n;
}

function addFd(fd: number, list: number[], other: readonly number[]): void {
  if (list.length >= MAX_FDS_PER_DIRECTION) throw new V1OptionError("too-many-fds", "too many fds");
  if (other.includes(fd))
    throw new V1OptionError("fd-both-directions", "an fd cannot be used for both reading and writing");
  if (!list.includes(fd)) list.push(fd);
}

export function parseV1Args(rawArgs: readonly Uint8Array[]): V1Request {
  for (const a of rawArgs) {
    if (!isPrintableUtf8(a))
      throw new V1OptionError("not-printable", "command line arguments must be printable UTF-8");
  }
  const args = rawArgs.map((a) => new TextDecoder().decode(a));
  const options: ParsedOption[] = [];
  const commands: string[] = [];
  let userIdArgs: boolean | null = null;
  const inputFds = [0];
  const outputFds = [1, 2];
  const seenFdOption = new Set<string>();
  let verify = false;

  const accept = (spec: OptionSpec, value: string | undefined) => {
    if (!spec.allowed) throw new V1OptionError("forbidden-option", `forbidden option: --${spec.name}`);
    const cmd = COMMANDS.get(spec.id);
    if (cmd) {
      if (userIdArgs !== null && userIdArgs !== cmd.userIdArgs)
        throw new V1OptionError("conflicting-commands", "conflicting commands");
      userIdArgs = cmd.userIdArgs;
      if (!commands.includes(spec.id)) commands.push(spec.id);
    }
    let v = value;
    if (FD_OPTIONS.has(spec.id)) {
      if (seenFdOption.has(spec.id))
        throw new V1OptionError("fd-option-twice", `--${spec.id} can only be specified once`);
      seenFdOption.add(spec.id);
      const fd = parseFdArgument(value!);
      addFd(fd, outputFds, inputFds);
      v = String(fd);
    } else if (spec.id === "verify") verify = true;
    else if (spec.id === "output") {
      if (value !== "-") throw new V1OptionError("output-not-stdout", "only '-' is supported for --output");
    } else {
      const table = SUBLISTS.get(spec.id);
      if (table) {
        try {
          v = sanitizeOptionList(value!, table);
        } catch (e) {
          if (!(e instanceof SubOptionError)) throw e;
          throw new V1OptionError("bad-sub-option", `--${spec.id}: ${e.message}`);
        }
      }
    }
    options.push(v === undefined ? { id: spec.id } : { id: spec.id, value: v });
  };

  let i = 0;
  let endedByDashDash = false;
  while (i < args.length) {
    const a = args[i]!;
    if (a === "--") {
      endedByDashDash = true;
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    if (a.startsWith("--")) {
      const body = a.slice(2);
      const eq = body.indexOf("=");
      const name = eq < 0 ? body : body.slice(0, eq);
      const spec = LONG_OPTIONS.get(name);
      if (!spec) {
        const prefixOf = name !== "" && [...LONG_OPTIONS.keys()].some((k) => k.startsWith(name));
        if (prefixOf) throw new V1OptionError("abbreviated-option", "abbreviated options are not allowed");
        throw new V1OptionError("unrecognized-option", "unrecognized option");
      }
      let value: string | undefined;
      if (spec.hasArg) {
        if (eq >= 0) value = body.slice(eq + 1);
        else if (i + 1 < args.length) value = args[++i];
        else throw new V1OptionError("missing-argument", `option --${spec.name} requires an argument`);
      } else if (eq >= 0)
        throw new V1OptionError("unexpected-argument", `option --${spec.name} does not take an argument`);
      i++;
      accept(spec, value);
      continue;
    }
    // A bundle of short options: each letter is one option; one taking an argument takes the
    // rest of the bundle, or the next argument when the bundle ends there.
    for (let j = 1; j < a.length; j++) {
      const spec = SHORT_OPTIONS.get(a[j]!);
      if (!spec) throw new V1OptionError("invalid-short-option", "invalid short option");
      if (!spec.hasArg) {
        accept(spec, undefined);
        continue;
      }
      let value: string;
      if (j + 1 < a.length) value = a.slice(j + 1);
      else if (i + 1 < args.length) value = args[++i]!;
      else throw new V1OptionError("missing-argument", `option -${a[j]} requires an argument`);
      accept(spec, value);
      break;
    }
    i++;
  }

  let positional = args.slice(i);
  if (!endedByDashDash && positional.some((p) => p.startsWith("-") && p !== "-")) {
    throw new V1OptionError(
      "dash-positional",
      'non-option arguments must not start with "-" unless after "--"',
    );
  }
  if (userIdArgs === true) {
    return {
      options,
      commands,
      userIds: positional,
      dashInput: false,
      verifySigFd: null,
      inputFds,
      outputFds,
    };
  }
  let verifySigFd: number | null = null;
  if (verify && positional.length > 0) {
    const sig = positional[0]!;
    if (!sig.startsWith("/dev/fd/"))
      throw new V1OptionError("bad-verify-signature", "--verify takes only /dev/fd/N on the server");
    verifySigFd = parseFdArgument(sig.slice(8));
    if (verifySigFd < 3)
      throw new V1OptionError("bad-verify-signature", "--verify signature fd must be 3 or more");
    addFd(verifySigFd, inputFds, outputFds);
    positional = positional.slice(1);
  }
  if (positional.length > 1 || (positional.length === 1 && positional[0] !== "-")) {
    throw new V1OptionError(
      "positional-not-allowed",
      "non-option arguments are not allowed (only a lone '-')",
    );
  }
  return {
    options,
    commands,
    userIds: [],
    dashInput: positional.length === 1,
    verifySigFd,
    inputFds,
    outputFds,
  };
}

/** Options that make gpg pick a signature's hash from a legacy mode (pgp6/7: MD5, SHA-1, RIPEMD-160). */
const HASH_MODE_OPTIONS = new Set(["pgp6", "pgp7", "pgp8", "rfc2440", "rfc4880", "openpgp", "gnupg"]);
const HASH_LIST_OPTIONS = new Set(["digest-algo", "personal-digest-preferences"]);
const SHA2_NAMES = new Set(["SHA224", "SHA256", "SHA384", "SHA512", "H8", "H9", "H10", "H11"]);

/**
 * True when the request leaves gpg no way to sign with a hash weaker than SHA-2 that the client
 * chose: every digest option names SHA-2 only, and no legacy mode option is given. A digest
 * grant (agent/confirmation/approver-grants.ts) matches a v1 signature by its data's SHA-2
 * digest; a signature over the data's SHA-1 would hold for any data that collides with it
 * (red team G1, docs/threat-model.md).
 */
export function signatureHashIsSha2(req: V1Request): boolean {
  for (const o of req.options) {
    if (HASH_MODE_OPTIONS.has(o.id)) return false;
    if (!HASH_LIST_OPTIONS.has(o.id)) continue;
    const names = (o.value ?? "")
      .toUpperCase()
      .split(/[\s,]+/)
      .filter(Boolean);
    if (names.length === 0 || !names.every((n) => SHA2_NAMES.has(n))) return false;
  }
  return true;
}
