/**
 * qrexec name rules, as qrexec validates them (qubes-remote-qrexec.md §2 "Validation"):
 * - qube names (qubes-core-admin validate_name): 1..31 chars, `[A-Za-z][A-Za-z0-9_.-]*`, not
 *   `none`/`default`/`Domain-0`, not ending in `-dm`;
 * - service names: `[A-Za-z0-9_.-]`, non-empty, at most NAME_MAX (255) bytes, never starting
 *   with `+` (policy RPCNAME_ALLOWED_CHARSET minus the `+` that separates the argument);
 * - arguments: `[A-Za-z0-9_.+-]` (they may start with `-`: option injection is the service's
 *   problem, as upstream); service+arg at most MAX_SERVICE_NAME_LEN (65000).
 * - call targets from a device: a qube name or one of the keywords qrexec-client-vm accepts.
 * Must never: accept a name containing anything outside these sets (no `/`, no spaces, no NUL).
 */
import { ProtocolError } from "../errors.ts";

export const QUBE_NAME_MAX = 31;
export const SERVICE_NAME_MAX = 255;
export const SERVICE_AND_ARG_MAX = 65000;

const QUBE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;
const SERVICE = /^[A-Za-z0-9_.-]+$/;
const ARGUMENT = /^[A-Za-z0-9_.+-]*$/;
const RESERVED_QUBE_NAMES = new Set(["none", "default", "Domain-0"]);

export function isQubeName(name: string): boolean {
  return QUBE_NAME.test(name) && !RESERVED_QUBE_NAMES.has(name) && !name.endsWith("-dm");
}

/** Qubes' labels (qubes-core-admin's defaults; dom0 has no others): a qube's colour. */
export const QUBE_LABELS = ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"] as const;

export function isQubeLabel(label: string): boolean {
  return (QUBE_LABELS as readonly string[]).includes(label);
}

export function isServiceName(service: string): boolean {
  return service.length <= SERVICE_NAME_MAX && SERVICE.test(service);
}

export function isArgument(arg: string): boolean {
  return ARGUMENT.test(arg);
}

/** Targets a call from a device may name (qrexec-client-vm also rewrites `$` to `@`). */
export function isCallTarget(target: string): boolean {
  const t = target.startsWith("$") ? `@${target.slice(1)}` : target;
  if (t === "@default" || t === "@adminvm" || t === "@dispvm" || t === "dom0") return true;
  if (t.startsWith("@dispvm:")) return isQubeName(t.slice("@dispvm:".length));
  return isQubeName(t);
}

export interface ServiceCall {
  readonly service: string;
  /** Empty for `SERVICE` and for `SERVICE+`. */
  readonly arg: string;
}

/** `SERVICE[+ARG]`, split at the first `+`. Throws ProtocolError("schema") when invalid. */
export function parseServiceCall(text: string): ServiceCall {
  if (text.length > SERVICE_AND_ARG_MAX) throw new ProtocolError("schema", "service name too long");
  const plus = text.indexOf("+");
  const service = plus < 0 ? text : text.slice(0, plus);
  const arg = plus < 0 ? "" : text.slice(plus + 1);
  if (!isServiceName(service) || !isArgument(arg)) throw new ProtocolError("schema", "invalid service name");
  return { service, arg };
}

/** The full name as qrexec writes it: `SERVICE+ARG`, with a trailing `+` for an empty argument. */
export function fullServiceName(call: ServiceCall): string {
  return `${call.service}+${call.arg}`;
}
