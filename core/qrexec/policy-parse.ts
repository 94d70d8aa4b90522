/**
 * Parses qrexec policy in the upstream R4.1+ `policy.d` grammar (qubes-remote-qrexec.md §3;
 * upstream `qrexec/policy/parser.py`, re-implemented, not copied):
 *
 *   SERVICE ARGUMENT SOURCE TARGET ACTION [KEY=VALUE ...]       whitespace-separated
 *   # comment                                                    only as a whole line
 *   !include PATH | !include-dir DIR | !include-service SERVICE ARGUMENT PATH | !compat-4.0
 *
 * Files whose name starts with `.` or does not end in `.policy` are ignored; any other name
 * outside `[0-9a-z_.-]` fails everything. Files are read in C-locale order of their names, rules
 * in file order, includes in place. Included files are obtained through an injected callback, so
 * this module stays pure.
 * Must never: return a partial policy. Any syntax error anywhere throws ConfigError
 * (`FILE:LINE: what is wrong`), so the caller denies every call, as upstream does.
 * Stricter than upstream: only ASCII blanks separate words (other whitespace makes a token
 * invalid), `user=` must be `[A-Za-z0-9_.-]+`, include cycles and nesting beyond
 * MAX_INCLUDE_DEPTH are errors (upstream recurses until Python gives up).
 */
import { assert, ConfigError } from "../errors.ts";
import { isArgument, isServiceName } from "./names.ts";
import {
  byCodeUnit,
  COMPAT40_PATH,
  classifyToken,
  type IncludeKind,
  type Policy,
  type PolicyFile,
  type PolicyRule,
  type ReadInclude,
  type RuleAction,
  type RuleRef,
  type TokenContext,
  type VmToken,
} from "./policy.ts";

export const MAX_INCLUDE_DEPTH = 16;

const FILE_NAME = /^[0-9a-z_.-]+$/;
const LEGACY_NAME = /^[A-Za-z0-9_.+-]+$/;
const LEGACY_IGNORED_SUFFIXES = [".rpmsave", ".rpmnew", ".swp"];
const USER = /^[A-Za-z0-9_.-]+$/;
const BLANKS = /[ \t\v\f]+/;
const PARAMS = new Map<string, ReadonlySet<string>>([
  ["deny", new Set(["notify"])],
  ["allow", new Set(["target", "user", "notify", "autostart"])],
  ["ask", new Set(["target", "default_target", "user", "notify", "autostart"])],
]);
const DIRECTIVE_ARITY = new Map([
  ["!include", 1],
  ["!include-dir", 1],
  ["!include-service", 3],
  ["!compat-4.0", 0],
]);

type Where = RuleRef;
interface ServiceArg {
  readonly service: string | null;
  readonly argument: string | null;
}
interface Loader {
  readonly readInclude: ReadInclude;
  readonly rules: PolicyRule[];
  readonly stack: string[];
}

function fail(where: Where, what: string): never {
  throw new ConfigError(`${where.file}:${where.line}: ${what}`);
}

/** Operator text quoted for a message, bounded, with control characters escaped. */
function show(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text);
}

const baseName = (name: string) => name.slice(name.lastIndexOf("/") + 1);

const isBlank = (c: string | undefined) => c === " " || c === "\t" || c === "\v" || c === "\f";

/** Python's `str.split()` for ASCII blanks: no empty words. Linear time. */
function words(line: string): string[] {
  let start = 0;
  let end = line.length;
  while (start < end && isBlank(line[start])) start++;
  while (end > start && isBlank(line[end - 1])) end--;
  return start === end ? [] : line.slice(start, end).split(BLANKS);
}

/**
 * The `.policy` files of one directory in evaluation order (upstream filter_filepaths): dot
 * files and other suffixes skipped, an invalid name throws, a repeated name keeps its first
 * occurrence (so a runtime directory listed first overrides /etc, as upstream's two dirs do).
 */
export function selectPolicyFiles(files: readonly PolicyFile[], where = ""): PolicyFile[] {
  const seen = new Set<string>();
  const out: PolicyFile[] = [];
  for (const f of files) {
    const base = baseName(f.name);
    if (base.startsWith(".") || !base.endsWith(".policy")) continue;
    if (!FILE_NAME.test(base)) {
      throw new ConfigError(`${where}${show(f.name)}: invalid policy file name (allowed: 0-9 a-z _ . -)`);
    }
    if (seen.has(base)) continue;
    seen.add(base);
    out.push(f);
  }
  return out.sort((a, b) => byCodeUnit(baseName(a.name), baseName(b.name)));
}

/**
 * Parses a policy directory given as files (names and contents), resolving includes through
 * `readInclude`. Throws ConfigError on any error; never returns a partial policy.
 */
export function parsePolicy(files: readonly PolicyFile[], readInclude: ReadInclude = () => null): Policy {
  const loader: Loader = { readInclude, rules: [], stack: [] };
  for (const f of selectPolicyFiles(files)) loadFile(loader, f);
  return { rules: loader.rules };
}

function eachLine(file: PolicyFile, fn: (line: string, where: Where) => void): void {
  const lines = file.text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) fn(lines[i]!, { file: file.name, line: i + 1 });
}

function isCommentOrBlank(ws: readonly string[]): boolean {
  return ws.length === 0 || ws[0]!.startsWith("#");
}

function loadFile(loader: Loader, file: PolicyFile): void {
  eachLine(file, (line, where) => {
    const ws = words(line);
    if (isCommentOrBlank(ws)) return;
    if (ws[0]!.startsWith("!")) return directive(loader, ws, where);
    if (ws.length < 5)
      fail(where, "wrong number of fields (SERVICE ARGUMENT SOURCE TARGET ACTION [KEY=VALUE...])");
    const [service, argument, source, target, action, ...params] = ws as [
      string,
      string,
      string,
      string,
      string,
    ];
    loader.rules.push(makeRule(serviceArg(service, argument, where), source, target, action, params, where));
  });
}

function directive(loader: Loader, ws: readonly string[], where: Where): void {
  const [name, ...params] = ws as [string, ...string[]];
  const arity = DIRECTIVE_ARITY.get(name);
  if (arity === undefined) fail(where, `invalid directive ${show(name)}`);
  if (params.length !== arity) fail(where, `${name} takes ${arity} parameter${arity === 1 ? "" : "s"}`);
  if (name === "!include") {
    include(loader, params[0]!, "file", where, (files) => loadFile(loader, files[0]!));
  } else if (name === "!include-dir") {
    const prefix = `${where.file}:${where.line}: `;
    include(loader, params[0]!, "dir", where, (files) => {
      for (const f of selectPolicyFiles(files, prefix)) loadFile(loader, f);
    });
  } else if (name === "!include-service") {
    const sa = serviceArg(params[0]!, params[1]!, where);
    include(loader, params[2]!, "file", where, (files) => loadServiceFile(loader, sa, files[0]!));
  } else {
    include(loader, COMPAT40_PATH, "compat-4.0", where, (files) => compat40(loader, files, where));
  }
}

function include(
  loader: Loader,
  path: string,
  kind: IncludeKind,
  where: Where,
  load: (files: readonly PolicyFile[]) => void,
): void {
  const key = `${kind}:${path}`;
  if (loader.stack.includes(key)) fail(where, `include cycle: ${show(path)} is already being read`);
  if (loader.stack.length >= MAX_INCLUDE_DEPTH)
    fail(where, `includes nested deeper than ${MAX_INCLUDE_DEPTH}`);
  const files = loader.readInclude(path, kind);
  if (files === null) {
    fail(where, kind === "file" ? `not a file: ${show(path)}` : `not a directory: ${show(path)}`);
  }
  assert(kind !== "file" || files.length === 1, "readInclude must return exactly one file for a file");
  loader.stack.push(key);
  load(files);
  loader.stack.pop();
}

/** A file in the R4.0 three-column format, for one service and argument (`!include-service`). */
function loadServiceFile(loader: Loader, sa: ServiceArg, file: PolicyFile): void {
  eachLine(file, (line, where) => {
    if (isCommentOrBlank(words(line))) return;
    // The compatibility substitutions upstream applies to this format, in the same order.
    const ws = words(line.replaceAll("$include:", "!include ").replaceAll("$", "@").replaceAll(",", " "));
    if (ws[0]?.startsWith("!")) {
      if (ws[0] !== "!include") fail(where, `invalid directive ${show(ws[0]!)}`);
      if (ws.length !== 2) fail(where, "!include takes 1 parameter");
      return include(loader, ws[1]!, "file", where, (files) => loadServiceFile(loader, sa, files[0]!));
    }
    if (ws.length < 3) fail(where, "wrong number of fields (SOURCE TARGET ACTION[,KEY=VALUE...])");
    const [source, target, action, ...params] = ws as [string, string, string];
    loader.rules.push(makeRule(sa, source, target, action, params, where));
  });
}

/** `!compat-4.0`: the R4.0 per-service files, sorted by service then argument (none last). */
function compat40(loader: Loader, files: readonly PolicyFile[], where: Where): void {
  const entries: { file: PolicyFile; service: string; argument: string }[] = [];
  for (const file of files) {
    const base = baseName(file.name);
    if (base.startsWith(".") || !LEGACY_NAME.test(base)) continue;
    if (LEGACY_IGNORED_SUFFIXES.some((s) => base.endsWith(s))) continue;
    const plus = base.indexOf("+");
    const service = plus < 0 ? base : base.slice(0, plus);
    entries.push({ file, service, argument: plus < 0 ? "*" : base.slice(plus) });
  }
  const argOrder = (a: string, b: string) =>
    a === b ? 0 : a === "*" ? 1 : b === "*" ? -1 : byCodeUnit(a, b);
  entries.sort((a, b) => byCodeUnit(a.service, b.service) || argOrder(a.argument, b.argument));
  for (const e of entries) {
    const sa = serviceArg(e.service, e.argument, where);
    loadServiceFile(loader, sa, e.file);
    if (e.argument === "*") continue;
    // A file for one argument denies that argument to everyone else (upstream's implicit rules).
    const implicit = { file: e.file.name, line: 0 };
    loader.rules.push(makeRule(sa, "@anyvm", "@anyvm", "deny", [], implicit));
    loader.rules.push(makeRule(sa, "@anyvm", "@adminvm", "deny", [], implicit));
  }
}

function serviceArg(service: string, argument: string, where: Where): ServiceArg {
  const svc = service === "*" ? null : service;
  if (svc !== null && !isServiceName(svc)) fail(where, `invalid service name ${show(service)}`);
  if (argument === "*") return { service: svc, argument: null };
  if (!argument.startsWith("+") || !isArgument(argument.slice(1))) {
    fail(where, `invalid argument ${show(argument)} (expected * or +ARGUMENT)`);
  }
  if (svc === null) fail(where, "only * argument allowed for * service");
  return { service: svc, argument };
}

function token(text: string, context: TokenContext, where: Where, what: string): VmToken {
  return classifyToken(text, context) ?? fail(where, `invalid ${what} ${show(text)}`);
}

function makeRule(
  sa: ServiceArg,
  source: string,
  target: string,
  action: string,
  params: readonly string[],
  where: Where,
): PolicyRule {
  const rule: PolicyRule = {
    service: sa.service,
    argument: sa.argument,
    source: token(source, "source", where, "source"),
    target: token(target, "target", where, "target"),
    action: parseAction(action, params, where),
    file: where.file,
    line: where.line,
  };
  if (rule.target.kind === "@default" && rule.action.kind === "allow" && rule.action.target === null) {
    fail(where, "allow action for @default target must specify target=");
  }
  return rule;
}

function parseAction(action: string, params: readonly string[], where: Where): RuleAction {
  const allowed = PARAMS.get(action) ?? fail(where, `invalid action ${show(action)} (allow, deny or ask)`);
  const values = new Map<string, string>();
  for (const p of params) {
    const eq = p.indexOf("=");
    if (eq < 0) fail(where, `invalid action parameter ${show(p)} (expected KEY=VALUE)`);
    const key = p.slice(0, eq);
    if (!allowed.has(key)) fail(where, `invalid parameter ${show(key)} for action ${action}`);
    if (values.has(key)) fail(where, `parameter given twice: ${key}`);
    values.set(key, p.slice(eq + 1));
  }
  const flag = (key: string, fallback: boolean): boolean => {
    const v = values.get(key);
    if (v === undefined) return fallback;
    if (v !== "yes" && v !== "no") fail(where, `${key}= can only be yes or no, not ${show(v)}`);
    return v === "yes";
  };
  const redirect = (key: string): VmToken | null => {
    const v = values.get(key);
    return v === undefined ? null : token(v, "redirect", where, `${key}= value`);
  };
  const user = values.get("user") ?? null;
  if (user !== null && !USER.test(user)) fail(where, `invalid user= value ${show(user)}`);
  if (action === "deny") return { kind: "deny", notify: flag("notify", true) };
  const common = {
    target: redirect("target"),
    user,
    notify: flag("notify", false),
    autostart: flag("autostart", true),
  };
  if (action === "allow") return { kind: "allow", ...common };
  return { kind: "ask", ...common, defaultTarget: redirect("default_target") };
}
