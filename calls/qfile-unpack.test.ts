import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EDQUOT, encodeFileHeader, FILE_HEADER_SIZE } from "../core/qrexec/qfile.ts";
import { memoryPair } from "../transport/memory.ts";
import { type UnpackOptions, unpackQfile } from "./qfile-unpack.ts";

const ENOSPC = 28;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Entries [name, size]; a size of -1 is a directory header. */
function stream(files: [string, number][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, entrySize] of files) {
    const n = Buffer.from(`${name}\0`);
    const size = Math.max(entrySize, 0);
    const h = {
      namelen: n.length,
      mode: entrySize < 0 ? 0o040755 : 0o100644,
      filelen: BigInt(size),
      atime: 0,
      atimeNsec: 0,
      mtime: 0,
      mtimeNsec: 0,
    };
    parts.push(encodeFileHeader(h), n, new Uint8Array(size));
  }
  parts.push(new Uint8Array(FILE_HEADER_SIZE));
  return Buffer.concat(parts);
}

async function unpack(bytes: Uint8Array, opts: Omit<UnpackOptions, "dir">) {
  const dir = join(mkdtempSync(join(tmpdir(), "qa-unpack-")), "in");
  dirs.push(join(dir, ".."));
  const [a, b] = memoryPair({ bufferBytes: bytes.length + 1024 });
  await a.write(bytes);
  await a.closeWrite();
  const r = await unpackQfile(b, a, { dir, ...opts });
  return { r, left: readdirSync(dir).sort() };
}

describe("qfile-unpack limits (qubes.Filecopy's FILECOPY_LIMITS)", () => {
  test("bytes per copy: EDQUOT, stoppedBy bytes; the files before stay, the one over goes", async () => {
    const { r, left } = await unpack(
      stream([
        ["a", 600],
        ["b", 500],
      ]),
      { maxBytes: 1000 },
    );
    expect([r.code, r.stoppedBy]).toEqual([EDQUOT, "bytes"]);
    expect(left).toEqual(["a"]);
  });

  test("exactly at the byte limit is allowed", async () => {
    const { r, left } = await unpack(
      stream([
        ["a", 600],
        ["b", 400],
      ]),
      { maxBytes: 1000 },
    );
    expect([r.code, r.stoppedBy]).toEqual([0, undefined]);
    expect(left).toEqual(["a", "b"]);
  });

  test("a directory's second header counts its size against the byte limit at once", async () => {
    // The second header of an existing directory adds the directory's size (at least tens of
    // bytes on any filesystem): at 990 of 1000 bytes, that is over.
    const { r, left } = await unpack(
      stream([
        ["a", 990],
        ["d", -1],
        ["d", -1],
      ]),
      { maxBytes: 1000 },
    );
    expect([r.code, r.stoppedBy]).toEqual([EDQUOT, "bytes"]);
    expect(left).toEqual(["a", "d"]);
    // Without the limit the same stream is fine.
    const free = await unpack(
      stream([
        ["a", 990],
        ["d", -1],
        ["d", -1],
      ]),
      {},
    );
    expect(free.r.code).toBe(0);
  });

  test("files per copy: EDQUOT, stoppedBy files", async () => {
    const { r, left } = await unpack(
      stream([
        ["a", 1],
        ["b", 1],
        ["c", 1],
      ]),
      { maxFiles: 2 },
    );
    expect([r.code, r.stoppedBy]).toEqual([EDQUOT, "files"]);
    expect(left).toEqual(["a", "b"]);
  });

  test("the reserve refuses: ENOSPC, stoppedBy space, no temporary file left; every reservation released", async () => {
    const asked: bigint[] = [];
    let held = 0;
    const reserve = async (_dir: string, bytes: bigint) => {
      asked.push(bytes);
      if (asked.length > 1) return null;
      held++;
      return () => {
        held--;
      };
    };
    const { r, left } = await unpack(
      stream([
        ["a", 10],
        ["b", 20],
      ]),
      { reserve },
    );
    expect([r.code, r.stoppedBy]).toEqual([ENOSPC, "space"]);
    expect(left).toEqual(["a"]);
    expect(asked).toEqual([10n + 4096n, 20n + 4096n]);
    expect(held).toBe(0);
  });
});
