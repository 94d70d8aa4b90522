/**
 * The flasher's writer end to end: into a regular file (write, read back, compare), a corrupted
 * read-back detected, the first block written last (observed through hooks), and — when this
 * machine lets us (root, losetup) — a real loop block device: O_EXCL, O_DIRECT verification, and
 * the exclusive open refused while the device is mounted.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHUNK_SIZE, HEAD_SIZE, type WriteEvent, writeImage } from "../../images/flash-write.ts";

const dir = mkdtempSync(join(tmpdir(), "qa-flash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An image of `size` random bytes (not a multiple of the block size, spanning several chunks). */
function makeImage(name: string, size: number): { path: string; bytes: Buffer } {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { path, bytes };
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const flip = (path: string, at: number) => {
  const fd = openSync(path, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
};

describe("file target", () => {
  const img = makeImage("a.img", 3 * CHUNK_SIZE + 12345);

  test("writes, verifies around the page cache, truncates an old longer file", async () => {
    const target = join(dir, "out.img");
    writeFileSync(target, Buffer.alloc(4 * CHUNK_SIZE, 0xaa)); // stale, longer content
    const progress: string[] = [];
    const r = await writeImage({
      image: img.path,
      target,
      kind: "file",
      onProgress: (p) => progress.push(`${p.phase}:${p.done}`),
    });
    expect(r).toEqual({ status: "done", bytes: img.bytes.length, sha256: sha(img.bytes), verify: "direct" });
    expect(sha(readFileSync(target))).toBe(sha(img.bytes));
    expect(progress.at(-1)).toBe(`verify:${img.bytes.length}`);
  });

  test("the first block is blanked first and written last, after verification", async () => {
    const events: (WriteEvent | "verify")[] = [];
    const r = await writeImage({
      image: img.path,
      target: join(dir, "order.img"),
      kind: "file",
      hooks: { onWrite: (e) => void events.push(e), beforeVerify: () => void events.push("verify") },
    });
    expect(r.status).toBe("done");
    expect(events[0]).toEqual({ kind: "wipe", offset: 0, length: HEAD_SIZE });
    expect(events.at(-1)).toEqual({ kind: "head", offset: 0, length: HEAD_SIZE });
    expect(events.at(-2)).toBe("verify");
    const data = events.filter((e): e is WriteEvent => e !== "verify" && e.kind === "data");
    expect(data.length).toBe(4);
    expect(data.every((e) => e.offset >= HEAD_SIZE)).toBe(true);
    expect(data[0]).toEqual({ kind: "data", offset: HEAD_SIZE, length: CHUNK_SIZE - HEAD_SIZE });
  });

  for (const [where, at] of [
    ["in a later chunk", 2 * CHUNK_SIZE + 77],
    ["in the first chunk, after the first block", HEAD_SIZE + 5],
  ] as const) {
    test(`a corrupted read-back ${where} is detected and the first block stays blank`, async () => {
      const target = join(dir, `bad-${at}.img`);
      const r = await writeImage({
        image: img.path,
        target,
        kind: "file",
        hooks: { beforeVerify: (t) => flip(t, at) },
      });
      const chunk = Math.floor(at / CHUNK_SIZE) * CHUNK_SIZE;
      expect(r).toEqual({ status: "verify-failed", offset: chunk, length: CHUNK_SIZE });
      expect(
        readFileSync(target)
          .subarray(0, HEAD_SIZE)
          .every((b) => b === 0),
      ).toBe(true);
    });
  }

  test("a wrong expected sha256 stops before the first block; an empty image is refused", async () => {
    const target = join(dir, "sum.img");
    const r = await writeImage({ image: img.path, target, kind: "file", expectedSha256: "0".repeat(64) });
    expect(r).toEqual({ status: "checksum-mismatch", expected: "0".repeat(64), actual: sha(img.bytes) });
    expect(
      readFileSync(target)
        .subarray(0, HEAD_SIZE)
        .every((b) => b === 0),
    ).toBe(true);
    writeFileSync(join(dir, "empty.img"), "");
    await expect(writeImage({ image: join(dir, "empty.img"), target, kind: "file" })).rejects.toThrow(
      "is empty",
    );
  });

  test("a tiny image (smaller than the first block) round-trips", async () => {
    const tiny = makeImage("tiny.img", 1000);
    const target = join(dir, "tiny-out.img");
    expect((await writeImage({ image: tiny.path, target, kind: "file" })).status).toBe("done");
    expect(readFileSync(target).equals(tiny.bytes)).toBe(true);
  });

  test("an aborted signal stops before the next chunk, first block blank", async () => {
    const ac = new AbortController();
    const target = join(dir, "abort.img");
    const r = await writeImage({
      image: img.path,
      target,
      kind: "file",
      signal: ac.signal,
      hooks: { onWrite: (e) => (e.kind === "data" && e.offset === CHUNK_SIZE ? ac.abort() : undefined) },
    });
    expect(r).toEqual({
      status: "interrupted",
      phase: "write",
      written: 2 * CHUNK_SIZE,
      total: img.bytes.length,
    });
    expect(
      readFileSync(target)
        .subarray(0, HEAD_SIZE)
        .every((b) => b === 0),
    ).toBe(true);
  });
});

/** A loop device over a file, or the reason we cannot have one here. */
function attachLoop(size: number): { dev: string; file: string } | string {
  if (process.getuid?.() !== 0) return "not root";
  const file = join(dir, `loop-${size}.bin`);
  writeFileSync(file, Buffer.alloc(0));
  truncateSync(file, size);
  const r = Bun.spawnSync(["losetup", "-f", "--show", file]);
  if (r.exitCode !== 0) return `losetup failed: ${r.stderr.toString().trim()}`;
  return { dev: r.stdout.toString().trim(), file };
}
const detach = (dev: string) => Bun.spawnSync(["losetup", "-d", dev]);

const probe = attachLoop(32 * 1024 * 1024);
const loopReason = typeof probe === "string" ? probe : null;
if (typeof probe !== "string") detach(probe.dev);
if (loopReason) console.warn(`skipping loop-device flash tests: ${loopReason}`);

describe.skipIf(loopReason !== null)("real block device (loop)", () => {
  test("O_EXCL write and O_DIRECT verification on a block device", async () => {
    const loop = attachLoop(32 * 1024 * 1024) as { dev: string; file: string };
    try {
      const img = makeImage("b.img", 2 * CHUNK_SIZE + 512);
      const r = await writeImage({ image: img.path, target: loop.dev, kind: "block" });
      expect(r).toMatchObject({ status: "done", verify: "direct" });
      expect(readFileSync(loop.file).subarray(0, img.bytes.length).equals(img.bytes)).toBe(true);
    } finally {
      detach(loop.dev);
    }
  });

  test("a mounted block device is refused by the exclusive open", async () => {
    const loop = attachLoop(32 * 1024 * 1024) as { dev: string; file: string };
    const mnt = mkdtempSync(join(tmpdir(), "qa-mnt-"));
    try {
      const mkfs = Bun.spawnSync(["mkfs.ext4", "-q", "-F", loop.dev]);
      const mount = mkfs.exitCode === 0 ? Bun.spawnSync(["mount", loop.dev, mnt]) : mkfs;
      if (mount.exitCode !== 0) {
        console.warn(`skipping the mounted-device check: ${mount.stderr.toString().trim()}`);
        return;
      }
      try {
        const img = makeImage("c.img", CHUNK_SIZE);
        await expect(writeImage({ image: img.path, target: loop.dev, kind: "block" })).rejects.toThrow(
          `${loop.dev} is busy: something has it mounted or open (the exclusive open was refused)`,
        );
      } finally {
        Bun.spawnSync(["umount", mnt]);
      }
    } finally {
      detach(loop.dev);
    }
  });
});
