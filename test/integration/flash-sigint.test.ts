/**
 * Ctrl-C in the middle of a write, with real processes: the flasher (test/fixtures/lsblk/
 * flash-child.ts, images/flash-main.ts slowed down per chunk) gets SIGINT once progress shows,
 * stops after the current chunk, syncs, says what state the target is in, and exits 130. The
 * target's first block is blank, so a half-written card never boots.
 */
import { afterAll, expect, test } from "bun:test";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "qa-flash-sigint-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("SIGINT mid-write: exit 130, a clear message, first block blank", async () => {
  const image = join(dir, "big.img");
  writeFileSync(image, Buffer.alloc(4096, 0x5a)); // a non-zero first block, then a sparse rest
  truncateSync(image, 256 * 1024 * 1024);
  const target = join(dir, "target.img");
  const child = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "../fixtures/lsblk/flash-child.ts"),
      image,
      target,
      "--target-file",
      "--yes",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, FLASH_CHILD_DELAY_MS: "20" } },
  );
  const decoder = new TextDecoder();
  let err = "";
  const reader = child.stderr.getReader();
  while (!/writing [\d.]+ MB \/ /.test(err)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`flasher ended before progress: ${err}`);
    err += decoder.decode(value, { stream: true });
  }
  child.kill("SIGINT");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    err += decoder.decode(value, { stream: true });
  }
  expect(await child.exited).toBe(130);
  expect(err).toContain("stopping after the current chunk");
  expect(err).toMatch(
    /Interrupted after writing [\d.]+ MB of 268\.4 MB\. The file's first block is blank, so it will not boot/,
  );
  expect(statSync(target).size).toBeLessThan(256 * 1024 * 1024);
  const fd = openSync(target, "r");
  const head = Buffer.alloc(4096);
  readSync(fd, head, 0, 4096, 0);
  closeSync(fd);
  expect(head.every((b) => b === 0)).toBe(true);
}, 30_000);
