import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FILECOPY_LIMITS } from "../../core/qrexec/services.ts";
import { fitsAboveFloor, floorBytes, SpaceGuard } from "./filecopy-space.ts";

const MiB = 1024n ** 2n;

describe("the free-space floor arithmetic", () => {
  test("max(reserveBytes, reservePercent of the filesystem)", () => {
    // 5 % of 8 MiB is under 64 MiB: the absolute floor wins; 5 % of 32 GiB is 1.6 GiB.
    expect(floorBytes(8n * MiB, FILECOPY_LIMITS)).toBe(64n * MiB);
    expect(floorBytes(32n * 1024n * MiB, FILECOPY_LIMITS)).toBe((32n * 1024n * MiB * 5n) / 100n);
    expect(floorBytes(8n * MiB, { reserveBytes: 2 * 1024 ** 2, reservePercent: 5 })).toBe(2n * MiB);
    expect(floorBytes(100n * MiB, { reserveBytes: 0, reservePercent: 0 })).toBe(0n);
  });

  test("fits exactly down to the floor, never below it, counting what others promised", () => {
    expect(fitsAboveFloor(10n * MiB, 0n, 8n * MiB, 2n * MiB)).toBe(true);
    expect(fitsAboveFloor(10n * MiB, 0n, 8n * MiB + 1n, 2n * MiB)).toBe(false);
    expect(fitsAboveFloor(10n * MiB, 1n, 8n * MiB, 2n * MiB)).toBe(false);
  });
});

describe("SpaceGuard", () => {
  test("concurrent reservations see each other; released ones stop counting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qa-space-"));
    try {
      const s = statfsSync(dir, { bigint: true });
      const free = s.bavail * s.bsize;
      const floor = { reserveBytes: 0, reservePercent: 0 };
      // Two copies each asking for 60 % of what is free: the first fits, the second does not.
      const want = (free * 6n) / 10n;
      const guard = new SpaceGuard();
      const first = await guard.reserve(dir, null, want, floor);
      const second = await guard.reserve(dir, null, want, floor);
      expect([first !== null, second]).toEqual([true, null]);
      first!();
      expect(await guard.reserve(dir, null, want, floor)).not.toBeNull();
      // A directory that cannot be looked at is no space.
      expect(await guard.reserve(join(dir, "missing"), null, 1n, floor)).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
