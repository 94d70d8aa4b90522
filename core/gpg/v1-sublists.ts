/**
 * The sub-option lists of split-gpg v1 (--list-options, --verify-options, --export-options),
 * checked against upstream's allowlists and re-emitted in canonical `a,b=c` form, as
 * gpg-list-options.c does (QubesOS/qubes-issues#10540): names case-folded, `no-` prefixes only
 * where allowed, spaces and commas as separators, show-sig-subpackets numbers 1..127 (optionally
 * a quoted list), nothing after an argument but a separator. The whole value `help` passes.
 * Must never: pass through the client's spelling of a list.
 */
import { ProtocolError } from "../errors.ts";

export interface ListOption {
  readonly allowed: boolean;
  readonly allowedNegated: boolean;
  readonly hasArg: boolean;
}

const yes = (hasArg = false): ListOption => ({ allowed: true, allowedNegated: true, hasArg });
const negatedOnly: ListOption = { allowed: false, allowedNegated: true, hasArg: false };

export const LIST_OPTIONS: ReadonlyMap<string, ListOption> = new Map([
  ["show-keyring", negatedOnly], // potential information leak
  ["show-keyserver-urls", yes()],
  ["show-notations", yes()],
  ["show-photos", yes()],
  ["show-policy-urls", yes()],
  ["show-sig-expire", yes()],
  ["show-std-notations", yes()],
  ["show-standard-notations", yes()],
  ["show-uid-validity", yes()],
  ["show-unusable-uids", yes()],
  ["show-unusable-subkeys", yes()],
  ["show-usage", yes()],
  ["show-user-notations", yes()],
  ["show-sig-subpackets", yes(true)],
  ["show-only-fpr-mbox", yes()],
  ["sort-sigs", yes()],
]);

export const VERIFY_OPTIONS: ReadonlyMap<string, ListOption> = new Map([
  ["show-keyserver-urls", yes()],
  ["show-notations", yes()],
  ["show-photos", yes()],
  ["show-policy-urls", yes()],
  ["show-std-notations", yes()],
  ["show-standard-notations", yes()],
  ["show-uid-validity", yes()],
  ["show-unusable-uids", yes()],
  ["show-user-notations", yes()],
  ["show-primary-key-only", yes()],
]);

export const EXPORT_OPTIONS: ReadonlyMap<string, ListOption> = new Map([
  ["export-local-sigs", yes()],
  ["export-attributes", yes()],
  ["export-sensitive-revkeys", yes()],
  ["export-clean", yes()],
  ["export-minimal", yes()],
  ["export-dane", negatedOnly],
  ["backup", yes()],
  ["include-local-sigs", yes()],
  ["include-attributes", yes()],
  ["include-sensitive-revkeys", yes()],
  ["export-unusable-sigs", yes()],
  ["export-clean-sigs", yes()],
  ["export-clean-uids", yes()],
]);

/**
 * A refused list: a ProtocolError "gpg-v1-options" (v1-options.ts wraps it into its own
 * V1OptionError); `message` is our own wording, never the client's text.
 */
export class SubOptionError extends ProtocolError {
  constructor(detail: string) {
    super("gpg-v1-options", detail);
  }
}

const isDelim = (c: string | undefined) => c === " " || c === ",";

/** Returns the canonical form of `value`, or throws SubOptionError. */
export function sanitizeOptionList(value: string, table: ReadonlyMap<string, ListOption>): string {
  if (value === "help") return "help";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new SubOptionError("non-ASCII or control character in a list option");
  }
  let i = 0;
  let out = "";
  let seen = false;
  const skipDelims = () => {
    while (isDelim(value[i])) i++;
  };
  const skipSpaces = () => {
    while (value[i] === " ") i++;
  };
  for (;;) {
    skipDelims();
    if (i >= value.length) break;
    if (seen) out += ",";
    seen = true;
    let j = i;
    while (j < value.length && value[j] !== "=" && !isDelim(value[j])) j++;
    const name = value.slice(i, j).replace(/[A-Z]/g, (c) => c.toLowerCase());
    if (name.length === 0) throw new SubOptionError("'=' not following a list option");
    i = j;
    out += name;
    const negated = name.startsWith("no-");
    const spec = table.get(negated ? name.slice(3) : name);
    if (!spec) throw new SubOptionError("unknown list option");
    if (!(negated ? spec.allowedNegated : spec.allowed)) throw new SubOptionError("forbidden list option");
    skipSpaces();
    if (value[i] !== "=") continue;
    i++;
    skipSpaces();
    if (negated || !spec.hasArg) throw new SubOptionError("list option does not take an argument");
    out += "=";
    if (i < value.length && value[i] !== ",") {
      const r = subpacketsArgument(value, i);
      out += r.text;
      i = r.end;
    }
    if (i < value.length && !isDelim(value[i])) {
      throw new SubOptionError("only a space or comma can follow a list option argument");
    }
  }
  return out;
}

function subpacketsArgument(v: string, i: number): { text: string; end: number } {
  if (v[i] !== '"') return subpacketNumber(v, i);
  i++;
  if (!v.includes('"', i)) throw new SubOptionError("unterminated quoted option argument");
  let text = '"';
  while (isDelim(v[i])) i++;
  let seen = false;
  while (v[i] !== '"') {
    if (i >= v.length) throw new SubOptionError("unterminated quoted option argument");
    if (seen) text += ",";
    seen = true;
    const r = subpacketNumber(v, i);
    text += r.text;
    i = r.end;
    while (isDelim(v[i])) i++;
  }
  return { text: `${text}"`, end: i + 1 };
}

/** strtol(3) semantics: leading spaces, an optional sign, decimal digits; 1..127. */
function subpacketNumber(v: string, i: number): { text: string; end: number } {
  let j = i;
  while (v[j] === " ") j++;
  let sign = 1;
  if (v[j] === "+" || v[j] === "-") {
    if (v[j] === "-") sign = -1;
    j++;
  }
  const digitsStart = j;
  while (j < v.length && v[j]! >= "0" && v[j]! <= "9") j++;
  if (j === digitsStart) throw new SubOptionError("invalid character in subpacket number list");
  const n = sign * Number(v.slice(digitsStart, j));
  if (!(n >= 1 && n <= 127)) throw new SubOptionError("subpacket number must be between 1 and 127");
  const next = v[j];
  if (next !== undefined && next !== '"' && next !== "," && next !== " ") {
    throw new SubOptionError("invalid character following subpacket number");
  }
  return { text: String(n), end: j };
}
