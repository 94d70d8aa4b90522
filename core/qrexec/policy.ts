/**
 * The device's own qrexec policy: types shared by policy-parse.ts and policy-eval.ts, and the
 * qube-token classes of upstream `qrexec/policy/parser.py` (qubes-remote-qrexec.md §3).
 *
 * A token is what stands in the SOURCE/TARGET columns, in `target=`/`default_target=`, or in the
 * target a caller asked for. Where each kind may stand (upstream's Source/Target/Redirect/
 * IntendedTarget classes, doc/multifile-policy.markdown):
 *
 *   kind             source target redirect intended
 *   literal name       +      +      +        +       (also `dom0`, an alias of @adminvm)
 *   uuid:UUID          +      +      +        +
 *   *                  +      +      -        -       (parser.py's WildcardVM, even @adminvm)
 *   @adminvm           +      +      +        +
 *   @anyvm             +      +      -        -       (anything except dom0/@adminvm)
 *   @default           -      +      -        +
 *   @dispvm            -      +      +        +
 *   @dispvm:NAME       +      +      +        +
 *   @dispvm:@tag:T     +      +      -        -
 *   @tag:T, @type:T    +      +      -        -
 *
 * Stricter than upstream, on purpose: a literal name must pass isQubeName, a uuid must be a
 * well-formed UUID, tag and type values use `[A-Za-z0-9_.-]`.
 * Must never: accept a token outside its context, or an empty suffix (`@tag:`).
 */
import { isQubeName } from "./names.ts";

export type TokenKind =
  | "name"
  | "uuid"
  | "*"
  | "@adminvm"
  | "@anyvm"
  | "@default"
  | "@dispvm"
  | "@dispvm:"
  | "@dispvm:@tag:"
  | "@tag:"
  | "@type:";

export type TokenContext = "source" | "target" | "redirect" | "intended";

export interface VmToken {
  readonly kind: TokenKind;
  /** The token as written, e.g. `@tag:work`. */
  readonly text: string;
  /** The part after a prefix (`work` for `@tag:work`, `NAME` for `@dispvm:NAME`); else the text. */
  readonly value: string;
}

const ALLOWED: Record<TokenContext, ReadonlySet<TokenKind>> = {
  source: new Set<TokenKind>([
    "name",
    "uuid",
    "*",
    "@adminvm",
    "@anyvm",
    "@dispvm:",
    "@dispvm:@tag:",
    "@tag:",
    "@type:",
  ]),
  target: new Set<TokenKind>([
    "name",
    "uuid",
    "*",
    "@adminvm",
    "@anyvm",
    "@default",
    "@dispvm",
    "@dispvm:",
    "@dispvm:@tag:",
    "@tag:",
    "@type:",
  ]),
  redirect: new Set<TokenKind>(["name", "uuid", "@adminvm", "@dispvm", "@dispvm:"]),
  intended: new Set<TokenKind>(["name", "uuid", "@adminvm", "@default", "@dispvm", "@dispvm:"]),
};

const UUID = /^uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const LABEL = /^[A-Za-z0-9_.-]+$/;
export const DOM0_UUID = "uuid:00000000-0000-0000-0000-000000000000";

export function isUuidToken(text: string): boolean {
  return UUID.test(text);
}

/** C-locale order: by UTF-16 code unit, which is byte order for the ASCII names policy uses. */
export const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** dom0 under any of its spellings (upstream is_dom0). */
export function isDom0(text: string): boolean {
  return text === "@adminvm" || text === "dom0" || text === DOM0_UUID;
}

function kindOf(text: string): { kind: TokenKind; value: string } | null {
  if (text === "*" || text === "@adminvm" || text === "@anyvm" || text === "@default" || text === "@dispvm") {
    return { kind: text as TokenKind, value: text };
  }
  for (const prefix of ["@dispvm:@tag:", "@tag:", "@type:"] as const) {
    if (text.startsWith(prefix)) {
      const value = text.slice(prefix.length);
      return LABEL.test(value) ? { kind: prefix, value } : null;
    }
  }
  if (text.startsWith("@dispvm:")) {
    const value = text.slice("@dispvm:".length);
    return isQubeName(value) || UUID.test(value) ? { kind: "@dispvm:", value } : null;
  }
  if (UUID.test(text)) return { kind: "uuid", value: text };
  if (isQubeName(text)) return { kind: "name", value: text };
  return null;
}

/** The token `text` in `context`, or null if it is malformed or not allowed there. */
export function classifyToken(text: string, context: TokenContext): VmToken | null {
  const k = kindOf(text);
  if (k === null || !ALLOWED[context].has(k.kind)) return null;
  return { kind: k.kind, text, value: k.value };
}

// --- Policy ---

export type RuleAction =
  | { readonly kind: "deny"; readonly notify: boolean }
  | {
      readonly kind: "allow";
      readonly target: VmToken | null;
      readonly user: string | null;
      readonly notify: boolean;
      readonly autostart: boolean;
    }
  | {
      readonly kind: "ask";
      readonly target: VmToken | null;
      readonly defaultTarget: VmToken | null;
      readonly user: string | null;
      readonly notify: boolean;
      readonly autostart: boolean;
    };

/** Where a rule was written. `line` is 0 for the implicit deny rules `!compat-4.0` adds. */
export interface RuleRef {
  readonly file: string;
  readonly line: number;
}

export interface PolicyRule extends RuleRef {
  /** null for `*`. */
  readonly service: string | null;
  /** null for `*`; otherwise `+ARG` as written (`+` alone = the empty argument). */
  readonly argument: string | null;
  readonly source: VmToken;
  readonly target: VmToken;
  readonly action: RuleAction;
}

export interface Policy {
  /** In evaluation order: the first matching rule wins. */
  readonly rules: readonly PolicyRule[];
}

/** One policy file. `name` may carry a directory; only its last component is checked and sorted. */
export interface PolicyFile {
  readonly name: string;
  readonly text: string;
}

/**
 * What an include directive asks for:
 * - "file": `!include PATH` (also `!include-service ... PATH` and `$include:`): one file;
 * - "dir": `!include-dir DIR`: every entry of the directory (the parser filters and sorts them);
 * - "compat-4.0": `!compat-4.0`: the R4.0 per-service files (path COMPAT40_PATH), named
 *   `SERVICE` or `SERVICE+ARG`.
 * Relative paths are as written; the callback resolves them (upstream: against the policy
 * directory). It returns null when the path does not exist or is not of that kind.
 */
export type IncludeKind = "file" | "dir" | "compat-4.0";
export type ReadInclude = (path: string, kind: IncludeKind) => readonly PolicyFile[] | null;
export const COMPAT40_PATH = "/etc/qubes-rpc/policy";

// --- Evaluation ---

/** What the device knows about a qube. Tags and types of Qubes-side qubes are usually unknown. */
export interface QubeInfo {
  readonly type?: string;
  readonly tags?: readonly string[];
  /** Without the `uuid:` prefix. */
  readonly uuid?: string;
  /** The qube's default disposable template (upstream default_dispvm). */
  readonly defaultDispvm?: string | null;
  readonly templateForDispvms?: boolean;
  /** Default true: a RemoteVM always shows as running (`autostart=no` checks this). */
  readonly running?: boolean;
  /** Internal qubes are never offered by `ask`. */
  readonly internal?: boolean;
}

/** Known qubes by name. dom0 is always known (as AdminVM) even when not listed. */
export interface PolicySystem {
  readonly qubes: ReadonlyMap<string, QubeInfo>;
}

/** A PolicySystem for a device: itself as a RemoteVM, plus whatever else it knows. */
export function deviceSystem(
  deviceName: string,
  others: Readonly<Record<string, QubeInfo>> = {},
): PolicySystem {
  const qubes = new Map<string, QubeInfo>(Object.entries(others));
  const own = Object.hasOwn(others, deviceName) ? others[deviceName] : undefined;
  qubes.set(deviceName, { type: "RemoteVM", tags: [], ...own });
  return { qubes };
}

/** The same fields as CallRequest; `arg` without the `+` ("" = none or empty). */
export interface PolicyRequest {
  readonly service: string;
  readonly arg: string;
  readonly source: string;
  /** A qube name, `uuid:...`, `@adminvm`, `@default` (also ""), `@dispvm` or `@dispvm:NAME`. */
  readonly target: string;
}

export type DenyReason =
  | "invalid-request"
  | "invalid-target"
  | "no-matching-rule"
  | "deny-rule"
  | "no-target"
  | "no-dispvm-template"
  | "autostart"
  | "no-ask-targets";

export interface DecisionParams {
  readonly user: string | null;
  readonly notify: boolean;
  readonly autostart: boolean;
  /** `ask` only: the targets upstream would offer (sorted); [] otherwise. */
  readonly targets: readonly string[];
  /** `ask` only: the preselected target, if the rule names one that is offered. */
  readonly defaultTarget: string | null;
}

export interface PolicyDecision {
  readonly action: "allow" | "deny" | "ask";
  /**
   * allow: where the call goes (redirect applied, `@adminvm` -> `dom0`, `@dispvm` -> its template).
   * ask: the rule's `target=` if any, else the (checked) target the caller asked for.
   * deny: null.
   */
  readonly target: string | null;
  /** The deciding rule; null when no rule matched or the request itself was invalid. */
  readonly rule: RuleRef | null;
  readonly params: DecisionParams;
  /** For deny: why (for logs and the audit trail). null for allow and ask. */
  readonly reason: DenyReason | null;
}
