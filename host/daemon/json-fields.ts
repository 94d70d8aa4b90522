/**
 * Reading fields of sys-remote's own JSON state files (the registry, pending enrolments): an
 * object with only the allowed keys, a string, an ISO 8601 UTC time. Every fault is a ConfigError
 * naming the file and field (`where`), with at most 40 characters of an unknown key echoed.
 * Must never: accept a field it was not told about, or echo a whole untrusted value.
 */
import { ConfigError } from "../../core/errors.ts";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

export function jsonObject(
  value: unknown,
  where: string,
  allowed: readonly string[],
): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`${where} must be a JSON object`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(`${where}: unknown field "${key.slice(0, 40)}" (allowed: ${allowed.join(", ")})`);
    }
  }
  return value as Record<string, unknown>;
}

export function jsonString(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== "string") throw new ConfigError(`${where}: "${key}" must be a string`);
  return v;
}

export function jsonTime(o: Record<string, unknown>, key: string, where: string): string {
  const v = jsonString(o, key, where);
  if (!ISO_TIME.test(v) || Number.isNaN(Date.parse(v))) {
    throw new ConfigError(`${where}: "${key}" must be an ISO 8601 UTC time such as 2026-01-02T03:04:05.000Z`);
  }
  return v;
}
