/**
 * The leftovers sweep of copy-from (stale-parts.ts) on real files and real processes: only our
 * own temporary names whose writer is gone go; a live writer's file, the user's files, the
 * device's names, links and directories stay.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { encodeFileHeader, FILE_HEADER_SIZE } from "../../core/qrexec/qfile.ts";
import { memoryPair } from "../../transport/memory.ts";
import { processStartMs, removeOrphanedParts, writerGone } from "./stale-parts.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "qa-stale-parts-"));
  dirs.push(d);
  return d;
};
const HEX = "0123456789abcdef";

/** A pid whose process has exited (and was reaped). */
async function deadPid(): Promise<number> {
  const p = Bun.spawn(["true"]);
  await p.exited;
  return p.pid;
}

describe("copy-from's sweep of leftovers", () => {
  test("a killed writer's file goes (nested too); a live older writer's, the user's, the device's, links and directories stay", async () => {
    const live = Bun.spawn(["sleep", "60"]);
    try {
      const dead = await deadPid();
      const dir = tempDir();
      const outside = join(tempDir(), "precious");
      writeFileSync(outside, "keep me");
      mkdirSync(join(dir, "sub"));
      const stale = [`.qfile-${dead}-${HEX}.part`, join("sub", `.qfile-${dead}-${HEX}.part`)];
      const kept = [
        `.qfile-${live.pid}-${HEX}.part`, // its writer started before it and runs
        "report.part",
        `.qfile-${HEX}.part`, // the device's temporary names: not ours to judge
        `.qfile-${dead}-XYZ.part`,
        `.qfile-${dead}-${HEX}.part.bak`,
        `qfile-${dead}-${HEX}.part`,
      ];
      for (const name of [...stale, ...kept]) writeFileSync(join(dir, name), "x");
      symlinkSync(outside, join(dir, `.qfile-${dead}-fedcba9876543210.part`));
      mkdirSync(join(dir, `.qfile-${dead}-00000000000000ff.part`));
      expect(await removeOrphanedParts(dir)).toBe(2);
      for (const name of stale) expect(existsSync(join(dir, name))).toBe(false);
      for (const name of kept) expect(existsSync(join(dir, name))).toBe(true);
      expect(readdirSync(dir)).toContain(`.qfile-${dead}-fedcba9876543210.part`);
      expect(readdirSync(dir)).toContain(`.qfile-${dead}-00000000000000ff.part`);
      expect(existsSync(outside)).toBe(true);
    } finally {
      live.kill("SIGKILL");
      await live.exited;
    }
  });

  test("a reused pid: the file goes only when its process started clearly after the file was made", () => {
    const made = Date.now();
    const startedAt = (ms: number) => () => ms;
    expect(writerGone(4242, made, startedAt(made + 10_000))).toBe(true); // pid reused since
    expect(writerGone(4242, made, startedAt(made - 10_000))).toBe(false); // may be the writer
    expect(writerGone(4242, made, startedAt(made + 1000))).toBe(false); // within rounding: keep
    expect(writerGone(4242, made, () => null)).toBe(true); // no such process
    expect(writerGone(process.pid, made, () => null)).toBe(false); // this very process
  });

  test("process start times are read right: ours is in the past, a dead pid has none", async () => {
    const ours = processStartMs(process.pid);
    expect(ours).not.toBeNull();
    expect(ours!).toBeLessThanOrEqual(Date.now() + 2000);
    expect(ours!).toBeGreaterThan(Date.now() - 24 * 3600_000 * 365);
    expect(processStartMs(await deadPid())).toBeNull();
  });

  test("the unpacker's temporary name carries its pid, and the sweep keeps a copy that is running", async () => {
    const dir = join(tempDir(), "in");
    const name = Buffer.from("big.bin\0");
    const header = encodeFileHeader({
      namelen: name.length,
      mode: 0o100644,
      filelen: 4n,
      atime: 0,
      atimeNsec: 0,
      mtime: 0,
      mtimeNsec: 0,
    });
    const [a, b] = memoryPair({ bufferBytes: 1 << 16 });
    await a.write(Buffer.concat([header, name, Buffer.from("data"), new Uint8Array(FILE_HEADER_SIZE)]));
    await a.closeWrite();
    let seen: string[] = [];
    let swept = -1;
    // reserve() is asked once the temporary file exists: the moment to sweep beside a live copy.
    const r = await unpackQfile(b, a, {
      dir,
      tempOwner: process.pid,
      reserve: async (d) => {
        seen = readdirSync(d);
        swept = await removeOrphanedParts(d);
        return () => {};
      },
    });
    expect(r.code).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(new RegExp(`^\\.qfile-${process.pid}-[0-9a-f]{16}\\.part$`));
    expect(swept).toBe(0);
    expect(readdirSync(dir)).toEqual(["big.bin"]);
  });
});
