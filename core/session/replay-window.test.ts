import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { REPLAY_WINDOW_BITS } from "../wire/limits.ts";
import { ReplayWindow } from "./replay-window.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const TIMEOUT = 5000 + RUNS * 3;
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
  test("in order, duplicates, reordering and the exact window edge", () => {
    const w = new ReplayWindow();
    expect(w.check(0n)).toBe(true);
    expect(w.commit(0n)).toBe(true);
    expect(w.check(0n)).toBe(false);
    expect(w.commit(0n)).toBe(false);
    const top = 10_000n;
    expect(w.commit(top)).toBe(true);
    const edge = top - BigInt(REPLAY_WINDOW_BITS - 1);
    expect(w.check(edge)).toBe(true); // the oldest counter still inside the window
    expect(w.check(edge - 1n)).toBe(false);
    expect(w.commit(edge - 1n)).toBe(false);
    expect(w.commit(edge)).toBe(true);
    expect(w.check(edge)).toBe(false);
    expect(w.commit(top - 1n)).toBe(true);
    expect(w.commit(top + 1n)).toBe(true);
    expect(w.check(edge)).toBe(false); // now outside the window
  });

  test("check changes nothing", () => {
    const w = new ReplayWindow(64);
    expect(w.check(5n)).toBe(true);
    expect(w.check(5n)).toBe(true);
    expect(w.commit(5n)).toBe(true);
  });

  test("a jump past the window forgets old bits but not the edge", () => {
    const w = new ReplayWindow(100);
    for (let c = 0n; c < 200n; c++) expect(w.commit(c)).toBe(true);
    expect(w.commit(200n + 100_000n)).toBe(true);
    for (let c = 100_201n; c < 100_300n; c++) expect(w.check(c)).toBe(true);
    expect(w.check(100_200n)).toBe(false);
  });

  test("counters near 2^64", () => {
    const w = new ReplayWindow();
    expect(w.commit(U64_MAX - 5n)).toBe(true);
    expect(w.commit(U64_MAX)).toBe(true);
    expect(w.check(U64_MAX)).toBe(false);
    expect(w.check(U64_MAX - 5n)).toBe(false);
    expect(w.check(U64_MAX - 1n)).toBe(true);
    expect(w.check(0n)).toBe(false);
    expect(() => w.check(2n ** 64n)).toThrow("u64");
    expect(() => w.commit(-1n)).toThrow("u64");
  });

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
