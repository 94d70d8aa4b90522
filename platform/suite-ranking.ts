/**
 * Ranks the link suites by a short self-measurement at start-up (DESIGN.md "Performance": rank
 * by measuring, not by guesswork). A Pi 4 without ARMv8 crypto extensions gets ChaCha first; an
 * x86 host with AES-NI and a native AES-GCM gets AES-GCM first. Costs ~20 ms once.
 * Must never: drop a suite (ranking only reorders; both stay offered).
 */
import {
  type CryptoResolver,
  LINK_SUITES,
  type LinkSuiteName,
  resolveLinkSuite,
} from "../core/noise/suites.ts";

const SAMPLE_BYTES = 64 * 1024;
const KEY = new Uint8Array(32).fill(1);
const EMPTY = new Uint8Array(0);
const BUDGET_MS = 8;

/** Bytes per millisecond of sealing 64 KiB records with this suite's cipher. */
export function measureSuite(resolver: CryptoResolver, name: LinkSuiteName): number {
  const { cipher } = resolveLinkSuite(resolver, name);
  const SAMPLE = new Uint8Array(SAMPLE_BYTES); // not kept: an idle agent has no use for it
  cipher.encrypt(KEY, 0n, EMPTY, SAMPLE); // warm-up (JIT, native init)
  let bytes = 0;
  let n = 1n;
  const start = performance.now();
  while (performance.now() - start < BUDGET_MS) {
    cipher.encrypt(KEY, n++, EMPTY, SAMPLE);
    bytes += SAMPLE.length;
  }
  return bytes / (performance.now() - start);
}

let ranked: LinkSuiteName[] | null = null;

export function rankLinkSuites(resolver: CryptoResolver): LinkSuiteName[] {
  ranked ??= LINK_SUITES.map((name) => ({ name, speed: measureSuite(resolver, name) }))
    .sort((x, y) => y.speed - x.speed)
    .map((x) => x.name);
  return ranked;
}
