import { describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { encodeFileHeader, FILE_HEADER_SIZE } from "../../core/qrexec/qfile.ts";
import { FILECOPY_LIMITS } from "../../core/qrexec/services.ts";
import { memoryPair } from "../../transport/memory.ts";
import { fitsAboveFloor, floorBytes, floorInodes, SpaceGuard } from "./filecopy-space.ts";

const ENOSPC = 28;

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

/**
 * The inode floor on a real small filesystem: a tmpfs with 600 inodes (mounting needs root; the
 * CI runs as root, so there this must not skip). A flood of 10,000 empty files (no bytes at all)
 * stops at the floor, and the state's atomic write (a temporary file renamed into place) still
 * gets its inode.
 */
function tmpfsProblem(): string | null {
  if (process.getuid?.() !== 0) return "not root";
  return null;
}
const noTmpfs = tmpfsProblem();
if (noTmpfs && process.env.CI === "true")
  throw new Error(`the inode-floor test needs root under CI: ${noTmpfs}`);

describe.skipIf(noTmpfs !== null)("the inode floor (tmpfs, nr_inodes=600)", () => {
  test("10,000 empty files stop at the floor with ENOSPC; the state's atomic write still works", async () => {
    const base = mkdtempSync(join(tmpdir(), "qa-inodes-"));
    const mnt = join(base, "fs");
    mkdirSync(mnt);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m,nr_inodes=600,mode=0700", "qa-inodes", mnt]);
    try {
      const state = join(mnt, "state");
      mkdirSync(state);
      const floor = { reserveBytes: 0, reservePercent: 0, reserveInodes: 100 };
      const guard = new SpaceGuard();
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 10_000; i++) {
        const n = Buffer.from(`f${i}\0`);
        parts.push(
          encodeFileHeader({
            namelen: n.length,
            mode: 0o100644,
            filelen: 0n,
            atime: 0,
            atimeNsec: 0,
            mtime: 0,
            mtimeNsec: 0,
          }),
          n,
        );
      }
      parts.push(new Uint8Array(FILE_HEADER_SIZE));
      const bytes = Buffer.concat(parts);
      const [a, b] = memoryPair({ bufferBytes: bytes.length + 1024 });
      await a.write(bytes);
      await a.closeWrite();
      const dir = join(mnt, "QubesIncoming", "work");
      mkdirSync(dir, { recursive: true });
      const r = await unpackQfile(b, a, {
        dir,
        maxFiles: 10_000,
        reserve: (d, n) => guard.reserve(d, state, n, floor),
      });
      expect([r.code, r.stoppedBy]).toEqual([ENOSPC, "space"]);
      const s = statfsSync(mnt, { bigint: true });
      expect(s.files).toBe(600n);
      expect(s.ffree).toBeGreaterThanOrEqual(100n);
      const kept = readdirSync(dir);
      expect(kept.length).toBeGreaterThan(300);
      expect(kept.some((n) => n.endsWith(".part"))).toBe(false);
      // What AgentState and the audit log do: write a temporary file, rename it into place.
      writeFileSync(join(state, "hosts.json.tmp"), "{}");
      renameSync(join(state, "hosts.json.tmp"), join(state, "hosts.json"));
      // Without the inode floor the same flood takes every inode.
      const floorless = new SpaceGuard();
      const [c, d] = memoryPair({ bufferBytes: bytes.length + 1024 });
      await c.write(bytes);
      await c.closeWrite();
      const dir2 = join(mnt, "QubesIncoming", "other");
      mkdirSync(dir2, { recursive: true });
      const r2 = await unpackQfile(d, c, {
        dir: dir2,
        maxFiles: 10_000,
        reserve: (x, n) => floorless.reserve(x, state, n, { ...floor, reserveInodes: 0 }),
      });
      expect(r2.code).toBe(ENOSPC);
      expect(statfsSync(mnt, { bigint: true }).ffree).toBeLessThan(5n);
    } finally {
      execFileSync("umount", [mnt]);
      rmSync(base, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("the inode floor arithmetic", () => {
  test("max(reserveInodes, reservePercent of the inodes); none without a fixed inode count", () => {
    expect(floorInodes(10_000n, { reserveBytes: 0, reservePercent: 5, reserveInodes: 100 })).toBe(500n);
    expect(floorInodes(1_000n, { reserveBytes: 0, reservePercent: 5, reserveInodes: 100 })).toBe(100n);
    expect(floorInodes(1_000n, { reserveBytes: 0, reservePercent: 0 })).toBe(
      BigInt(FILECOPY_LIMITS.reserveInodes),
    );
    expect(floorInodes(0n, FILECOPY_LIMITS)).toBe(0n);
  });
});
