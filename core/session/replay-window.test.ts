/**
 * Unit tests of the replay window (replay-window.ts): duplicates, the exact window edge, a jump
 * past the window, counters near 2^64. The comparison with a naive model over random sequences
 * is in test/fuzz/replay-window.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { REPLAY_WINDOW_BITS } from "../wire/limits.ts";
import { ReplayWindow } from "./replay-window.ts";

const U64_MAX = 2n ** 64n - 1n;

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
});
