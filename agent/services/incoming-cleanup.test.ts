/**
 * The start-up sweep: removes exactly the receiver's temporary files, at any depth, and nothing
 * else; never follows a link out of the incoming tree.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeStaleParts } from "./incoming-cleanup.ts";

const root = mkdtempSync(join(tmpdir(), "qa-incoming-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PART = ".qfile-0123456789abcdef.part";

describe("removeStaleParts", () => {
  test("removes temporary files at any depth; keeps everything else; follows no link", async () => {
    const incoming = join(root, "QubesIncoming");
    const deep = join(incoming, "sys-remote", "a", "b");
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(incoming, "sys-remote", PART), "half");
    writeFileSync(join(deep, ".qfile-fedcba9876543210.part"), "half");
    // look-alikes that are not the receiver's temporary files
    const kept = [".qfile-short.part", "qfile-0123456789abcdef.part", `${PART}.txt`, "report.pdf"];
    for (const n of kept) writeFileSync(join(deep, n), "keep");
    mkdirSync(join(deep, ".qfile-aaaaaaaaaaaaaaaa.part"));
    // a link to a directory outside, holding a temporary-looking file: not followed
    const outside = join(root, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, PART), "not ours");
    symlinkSync(outside, join(incoming, "sys-remote", "link"));
    // a link named like a temporary file: not a regular file, kept
    symlinkSync(join(outside, PART), join(deep, ".qfile-bbbbbbbbbbbbbbbb.part"));

    expect(await removeStaleParts(incoming)).toEqual({ removed: 2, failed: 0 });
    expect(existsSync(join(incoming, "sys-remote", PART))).toBe(false);
    expect(existsSync(join(deep, ".qfile-fedcba9876543210.part"))).toBe(false);
    for (const n of kept) expect(existsSync(join(deep, n))).toBe(true);
    expect(existsSync(join(deep, ".qfile-aaaaaaaaaaaaaaaa.part"))).toBe(true);
    expect(existsSync(join(outside, PART))).toBe(true);
    expect(await removeStaleParts(incoming)).toEqual({ removed: 0, failed: 0 });
  });

  test("a missing incoming directory is nothing to do", async () => {
    expect(await removeStaleParts(join(root, "none"))).toEqual({ removed: 0, failed: 0 });
  });

  test("a tree deeper than a recursion would survive is swept", async () => {
    let d = join(root, "deep");
    for (let i = 0; i < 300; i++) d = join(d, "d");
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, PART), "half");
    expect(await removeStaleParts(join(root, "deep"))).toEqual({ removed: 1, failed: 0 });
  });
});
