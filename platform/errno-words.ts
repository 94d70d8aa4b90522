/**
 * A system error in the system's own words with its name, "no space left on device (ENOSPC)",
 * from the runtime's error table (Node and Bun both have node:util getSystemErrorMap). One place
 * for every message that would otherwise show a bare errno number or an error code.
 * Must never: invent words for a code the system does not know (the caller falls back).
 */
import { getSystemErrorMap } from "node:util";

/** By errno number (Linux values, as qfile replies carry them); null if unknown. */
export function errnoWords(errno: number): string | null {
  const known = getSystemErrorMap().get(-Math.abs(errno));
  return known ? `${known[1]} (${known[0]})` : null;
}

/** By error name, "ENOSPC" -> "no space left on device (ENOSPC)"; null if unknown. */
export function errorCodeWords(code: string): string | null {
  for (const [name, words] of getSystemErrorMap().values()) if (name === code) return `${words} (${code})`;
  return null;
}
