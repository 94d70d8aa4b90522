/**
 * What the decoder tests ask of a call: its value, or the code of the ProtocolError it threw.
 * Any other exception propagates, so a test (or a fast-check property) fails on it.
 * Also a deterministic filler, so big inputs cost no per-byte generation.
 */
import { ProtocolError } from "../../core/errors.ts";

export type Outcome<T> = { ok: T } | { code: string };

export function outcome<T>(f: () => T): Outcome<T> {
  try {
    return { ok: f() };
  } catch (e) {
    if (e instanceof ProtocolError) return { code: e.code };
    throw e;
  }
}

export async function outcomeAsync<T>(f: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: await f() };
  } catch (e) {
    if (e instanceof ProtocolError) return { code: e.code };
    throw e;
  }
}

/** n pseudo-random bytes from `seed`; with zeroEvery, every zeroEvery-th byte is 0. */
export function filled(n: number, seed = 7, zeroEvery = 0): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = zeroEvery && i % zeroEvery === 0 ? 0 : x >>> 24;
  }
  return b;
}
