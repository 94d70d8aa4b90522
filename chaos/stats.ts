/**
 * Small numeric helpers for the chaos runner: a seeded RNG (mulberry32, so a run is reproduced
 * from its printed seed), percentiles and min/median/max spreads.
 * Must never: use Math.random (a run must be reproducible from its seed).
 */

export interface Rng {
  /** [0, 1) */
  next(): number;
  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number;
}

export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo)) };
}

/** Random bytes from the seeded RNG (what is sent is reproducible too). */
export function bytesFrom(r: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = Math.floor(r.next() * 4294967296);
    out[i] = v & 0xff;
    if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = (v >>> 24) & 0xff;
  }
  return out;
}

export function quantile(samples: number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface Spread {
  readonly min: number;
  readonly median: number;
  readonly max: number;
}

export function spread(samples: number[]): Spread | null {
  if (samples.length === 0) return null;
  return { min: Math.min(...samples), median: quantile(samples, 0.5), max: Math.max(...samples) };
}

export const round = (x: number, digits = 0) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};
