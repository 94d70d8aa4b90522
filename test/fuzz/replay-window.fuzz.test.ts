/**
 * Property test of the replay window (core/session/replay-window.ts) against the obvious model
 * (every committed counter in a Set): check() and commit() agree with it on any sequence of
 * counters, with windows of 1 bit to the link's REPLAY_WINDOW_BITS. The ring bitmap must forget
 * stale bits exactly when they leave the window, never earlier or later.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ReplayWindow } from "../../core/session/replay-window.ts";
import { REPLAY_WINDOW_BITS } from "../../core/wire/limits.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const TIMEOUT = 120_000 + RUNS * 10; // generous: a loaded CI machine must not fail a property test on time
const U64_MAX = 2n ** 64n - 1n;

/** The obvious model: every committed counter in a Set, plus the highest. */
class NaiveWindow {
  private seen = new Set<bigint>();
  private highest = -1n;
  constructor(private readonly w: bigint) {}
  check(c: bigint): boolean {
    return !this.seen.has(c) && (c > this.highest || this.highest - c < this.w);
  }
  commit(c: bigint): boolean {
    if (!this.check(c)) return false;
    this.seen.add(c);
    if (c > this.highest) this.highest = c;
    return true;
  }
}

describe("ReplayWindow", () => {
  // Each step moves relative to the highest counter so far (reorderings, duplicates, the exact
  // window edge, small jumps past it), or by whole 32-bit blocks from the last counter (so bit
  // positions collide across ring wrap-arounds), or anywhere in u64, or to just below 2^64; or
  // an in-order run from the top, long enough to wrap the bitmap ring (stale bits must be gone).
  type Move = { rel: number } | { fromLast: number } | { abs: bigint } | { run: number };
  const moveArb = (bits: number): fc.Arbitrary<Move> => {
    const blocks = 4 * (Math.ceil(bits / 32) + 1);
    return fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: -2 * bits - 3, max: 3 }).map((rel) => ({ rel })) },
      { weight: 1, arbitrary: fc.integer({ min: bits - 2, max: 3 * bits }).map((rel) => ({ rel })) },
      {
        weight: 3,
        arbitrary: fc
          .tuple(fc.integer({ min: -blocks, max: blocks }), fc.integer({ min: -1, max: 1 }))
          .map(([k, d]) => ({ fromLast: k * 32 + d })),
      },
      { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: U64_MAX }).map((abs) => ({ abs })) },
      { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 3000n }).map((d) => ({ abs: U64_MAX - d })) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 * bits + 200 }).map((run) => ({ run })) },
    );
  };
  const caseArb = fc
    .constantFrom(1, 2, 31, 32, 33, 100, 1000, REPLAY_WINDOW_BITS)
    .chain((bits) =>
      fc.tuple(fc.constant(bits), fc.array(fc.tuple(fc.boolean(), moveArb(bits)), { maxLength: 300 })),
    );

  test(
    "matches the naive model (fast-check)",
    () => {
      fc.assert(
        fc.property(caseArb, ([bits, steps]) => {
          const real = new ReplayWindow(bits);
          const model = new NaiveWindow(BigInt(bits));
          let top = 0n;
          let last = 0n;
          for (const [doCommit, move] of steps) {
            if ("run" in move) {
              for (let i = 0; i < move.run && top < U64_MAX; i++) {
                top++;
                expect(real.commit(top)).toBe(model.commit(top));
              }
              last = top;
              continue;
            }
            const c =
              "abs" in move
                ? move.abs
                : "rel" in move
                  ? clamp(top + BigInt(move.rel))
                  : clamp(last + BigInt(move.fromLast));
            last = c;
            expect(real.check(c)).toBe(model.check(c));
            if (doCommit) expect(real.commit(c)).toBe(model.commit(c));
            if (doCommit && c > top) top = c;
          }
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );
});

function clamp(c: bigint): bigint {
  return c < 0n ? 0n : c > U64_MAX ? U64_MAX : c;
}
