/**
 * Evaluates a parsed policy for one call, with the matching semantics of upstream
 * `qrexec/policy/parser.py` (Rule.is_match, the token classes' match/expand, Allow/Ask.evaluate,
 * collect_targets_for_ask), re-implemented for a device:
 *
 * - the first rule whose service, argument, source and target match decides; none = deny;
 * - `*` service/argument match anything (an absent argument is the empty one); `+` matches only
 *   the empty argument; `@anyvm` is anything but dom0/@adminvm; `dom0`, `@adminvm` and the zero
 *   uuid are one qube; `@tag:`/`@type:` match only qubes `system` lists with that tag/type;
 * - the target a caller asked for is checked first: a name the device does not know becomes
 *   `@default` (as upstream); `@default` and `@dispvm` match as keywords (equality);
 *   `@dispvm:NAME` must name a disposable template;
 * - `target=` redirects and keeps the rule's action; `allow` to `@default` with no redirect is
 *   denied; `@dispvm` resolves to the caller's default disposable template (none = deny);
 *   `autostart=no` denies targets that are not running;
 * - `ask` is returned as is, with the targets upstream would offer; on a device the agent turns
 *   it into a physical confirmation (or a deny).
 * Must never: throw for any request (an invalid one is denied with reason "invalid-request"),
 * allow without a matching allow/ask rule, or let a Qubes-side tag/type match by guesswork.
 */
import { isArgument, isQubeName, isServiceName } from "./names.ts";
import {
  byCodeUnit,
  classifyToken,
  type DenyReason,
  DOM0_UUID,
  isDom0,
  isUuidToken,
  type Policy,
  type PolicyDecision,
  type PolicyRequest,
  type PolicyRule,
  type PolicySystem,
  type QubeInfo,
  type RuleAction,
  type RuleRef,
  type VmToken,
} from "./policy.ts";

interface Known {
  readonly name: string;
  readonly info: QubeInfo;
}
/** A request after checking: `argument` with its `+`, `target` verified (upstream Request). */
interface Checked {
  readonly service: string;
  readonly argument: string;
  readonly source: string;
  readonly target: string;
}

const DOM0: Known = { name: "dom0", info: { type: "AdminVM", tags: [], uuid: DOM0_UUID.slice(5) } };

function lookup(system: PolicySystem, ref: string): Known | null {
  if (ref.startsWith("uuid:")) {
    const uuid = ref.slice(5).toLowerCase();
    for (const [name, info] of system.qubes) if (info.uuid?.toLowerCase() === uuid) return { name, info };
    return ref === DOM0_UUID ? DOM0 : null;
  }
  const info = system.qubes.get(ref);
  if (info !== undefined) return { name: ref, info };
  return ref === "dom0" ? DOM0 : null;
}

function* allQubes(system: PolicySystem): Generator<Known> {
  for (const [name, info] of system.qubes) yield { name, info };
  if (!system.qubes.has("dom0")) yield DOM0;
}

/** upstream match_strings: equality, with `uuid:` resolved against the known qubes. */
function sameQube(system: PolicySystem, a: string, b: string): boolean {
  const ua = a.startsWith("uuid:");
  const ub = b.startsWith("uuid:");
  if (ua && ub) return a.toLowerCase() === b.toLowerCase();
  if (ua || ub) return lookup(system, ua ? a : b)?.name === (ua ? b : a);
  return a === b;
}

const hasTag = (k: Known | null, tag: string) => k !== null && (k.info.tags ?? []).includes(tag);

function dispvmTemplate(system: PolicySystem, source: string): string | null {
  const template = lookup(system, source)?.info.defaultDispvm;
  return template ? `@dispvm:${template}` : null;
}

/** Does `token` (from a rule) match `other` (a source name, or a verified intended target)? */
function matches(token: VmToken, other: string, system: PolicySystem, source?: string): boolean {
  switch (token.kind) {
    case "*":
      return true;
    case "@adminvm":
      return isDom0(other);
    case "@anyvm":
      return !isDom0(other);
    case "@type:": {
      const k = lookup(system, other);
      return k !== null && k.info.type === token.value;
    }
    case "@tag:":
      return hasTag(lookup(system, other), token.value);
    case "@dispvm:":
    case "@dispvm:@tag:": {
      // A source is never a disposable keyword, so these never match as a source (as upstream).
      const template = other === "@dispvm" && source !== undefined ? dispvmTemplate(system, source) : other;
      if (template === null || !template.startsWith("@dispvm:")) return false;
      const name = template.slice("@dispvm:".length);
      if (token.kind === "@dispvm:") return sameQube(system, token.value, name);
      const k = lookup(system, name);
      return k?.info.templateForDispvms === true && hasTag(k, token.value);
    }
    default:
      // names, uuids and the keywords @default and @dispvm: equality (dom0 in any spelling).
      return isDom0(token.text) ? isDom0(other) : sameQube(system, token.text, other);
  }
}

/** upstream IntendedTarget.verify: an unknown name becomes @default; null = refuse the call. */
function verifyTarget(system: PolicySystem, text: string): string | null {
  const token = classifyToken(text === "" ? "@default" : text, "intended");
  if (token === null) return null;
  if (token.kind === "name" || token.kind === "uuid")
    return lookup(system, token.text) ? token.text : "@default";
  if (token.kind === "@dispvm:") {
    return lookup(system, token.value)?.info.templateForDispvms === true ? token.text : null;
  }
  return token.text;
}

function matchesButTarget(rule: PolicyRule, req: Checked, system: PolicySystem): boolean {
  return (
    (rule.service === null || rule.service === req.service) &&
    (rule.argument === null || rule.argument === req.argument) &&
    matches(rule.source, req.source, system)
  );
}

/** upstream allow_no_autostart: dom0 and running qubes only; a disposable always starts. */
function runsWithoutStart(system: PolicySystem, target: string): boolean {
  if (isDom0(target)) return true;
  if (target.startsWith("@dispvm")) return false;
  const k = lookup(system, target);
  return k !== null && k.info.running !== false;
}

/** Every known qube or keyword a rule target (or redirect) could stand for (upstream expand). */
function expand(token: VmToken, system: PolicySystem): string[] {
  const out: string[] = [];
  switch (token.kind) {
    case "name":
    case "uuid": {
      const k = lookup(system, token.text);
      if (k !== null) out.push(k.name);
      break;
    }
    case "*":
    case "@anyvm":
      for (const k of allQubes(system)) {
        if (token.kind === "*" || !isDom0(k.name)) out.push(k.name);
        if (k.info.templateForDispvms) out.push(`@dispvm:${k.name}`);
      }
      out.push("@dispvm");
      break;
    case "@adminvm":
    case "@dispvm":
      out.push(token.text);
      break;
    case "@type:":
    case "@tag:":
    case "@dispvm:@tag:":
      for (const k of allQubes(system)) {
        if (token.kind === "@type:" && k.info.type === token.value) out.push(k.name);
        if (token.kind === "@tag:" && hasTag(k, token.value)) out.push(k.name);
        if (token.kind === "@dispvm:@tag:" && k.info.templateForDispvms && hasTag(k, token.value)) {
          out.push(`@dispvm:${k.name}`);
        }
      }
      break;
    case "@dispvm:": {
      const k = lookup(system, token.value);
      if (k?.info.templateForDispvms) out.push(`@dispvm:${k.name}`);
      break;
    }
    case "@default":
      break;
  }
  return out;
}

/** upstream collect_targets_for_ask: what an `ask` without `target=` may offer, sorted. */
function targetsForAsk(policy: Policy, req: Checked, system: PolicySystem): string[] {
  const targets = new Set<string>();
  for (let i = policy.rules.length - 1; i >= 0; i--) {
    const rule = policy.rules[i]!;
    if (!matchesButTarget(rule, req, system)) continue;
    const token = (rule.action.kind !== "deny" && rule.action.target) || rule.target;
    for (const t of expand(token, system)) {
      if (rule.action.kind === "deny") targets.delete(t);
      else targets.add(t);
    }
  }
  if (targets.delete("@dispvm")) {
    const template = dispvmTemplate(system, req.source);
    if (template !== null) targets.add(template);
  }
  if (targets.delete("@adminvm")) targets.add("dom0");
  const source = lookup(system, req.source);
  targets.delete(req.source); // no loopback calls
  if (source !== null) targets.delete(source.name);
  for (const t of [...targets]) {
    if (lookup(system, t.startsWith("@dispvm:") ? t.slice("@dispvm:".length) : t)?.info.internal)
      targets.delete(t);
  }
  return [...targets].sort(byCodeUnit);
}

function deny(reason: DenyReason, rule: RuleRef | null, notify: boolean): PolicyDecision {
  return {
    action: "deny",
    target: null,
    rule,
    params: { user: null, notify, autostart: true, targets: [], defaultTarget: null },
    reason,
  };
}

type Granting = Exclude<RuleAction, { kind: "deny" }>;

function grant(
  action: "allow" | "ask",
  target: string,
  rule: RuleRef,
  { user, notify, autostart }: Granting,
  targets: readonly string[] = [],
  defaultTarget: string | null = null,
): PolicyDecision {
  return { action, target, rule, params: { user, notify, autostart, targets, defaultTarget }, reason: null };
}

function allow(action: Granting, ref: RuleRef, req: Checked, system: PolicySystem): PolicyDecision {
  let target = action.target === null ? req.target : verifyTarget(system, action.target.text);
  if (target === null) return deny("invalid-target", ref, true);
  if (target === "@default") return deny("no-target", ref, true);
  if (target === "@dispvm") {
    target = dispvmTemplate(system, req.source);
    if (target === null) return deny("no-dispvm-template", ref, true);
  } else if (target === "@adminvm") {
    target = "dom0";
  }
  if (!action.autostart && !runsWithoutStart(system, target)) return deny("autostart", ref, action.notify);
  return grant("allow", target, ref, action);
}

function ask(
  action: Extract<RuleAction, { kind: "ask" }>,
  ref: RuleRef,
  policy: Policy,
  req: Checked,
  system: PolicySystem,
): PolicyDecision {
  const redirect = action.target === null ? null : isDom0(action.target.text) ? "dom0" : action.target.text;
  let targets = redirect === null ? targetsForAsk(policy, req, system) : [redirect];
  if (!action.autostart) targets = targets.filter((t) => runsWithoutStart(system, t));
  if (targets.length === 0) return deny("no-ask-targets", ref, true);
  const d = action.defaultTarget?.text ?? null;
  let defaultTarget =
    d === "@dispvm" ? dispvmTemplate(system, req.source) : d !== null && isDom0(d) ? "dom0" : d;
  if (defaultTarget !== null && !targets.includes(defaultTarget)) defaultTarget = null;
  return grant("ask", redirect ?? req.target, ref, action, targets, defaultTarget);
}

/**
 * Decides one call. `request.arg` is without its `+` ("" for none or empty); `request.target`
 * is what the caller asked for. Never throws; see PolicyDecision for the result.
 */
export function evaluate(policy: Policy, request: PolicyRequest, system: PolicySystem): PolicyDecision {
  const { service, arg, source } = request;
  const sourceOk = isQubeName(source) || isUuidToken(source);
  if (!isServiceName(service) || !isArgument(arg) || !sourceOk) return deny("invalid-request", null, true);
  const target = verifyTarget(system, request.target);
  if (target === null) return deny("invalid-target", null, true);
  const req: Checked = { service, argument: `+${arg}`, source, target };
  const rule = policy.rules.find(
    (r) => matchesButTarget(r, req, system) && matches(r.target, target, system, source),
  );
  if (rule === undefined) return deny("no-matching-rule", null, true);
  const ref: RuleRef = { file: rule.file, line: rule.line };
  const action = rule.action;
  if (action.kind === "deny") return deny("deny-rule", ref, action.notify);
  return action.kind === "allow" ? allow(action, ref, req, system) : ask(action, ref, policy, req, system);
}
