/** The copy commands' own lines: a broken call, and receiver codes in words (never a bare errno). */
import { describe, expect, test } from "bun:test";
import { errnoWords } from "../../platform/errno-words.ts";
import { brokenCopyLine, copyErrorLine } from "./copy-common.ts";

const name = new TextEncoder().encode("dir/big.bin");

describe("copy messages", () => {
  test("a full disk is said in words, with the file", () => {
    expect(copyErrorLine(28, name)).toBe(
      'qubes-air: File copy: no space left on the receiving device; last file: "dir/big.bin"\n',
    );
  });

  test("a code qfile has no words for is worded by the system, with its name", () => {
    expect(errnoWords(71)).toBe("protocol error (EPROTO)");
    expect(copyErrorLine(71, null)).toBe(
      "qubes-air: File copy: the receiver failed: protocol error (EPROTO)\n",
    );
    expect(copyErrorLine(255, null)).toBe("qubes-air: File copy: the receiver failed (errno 255)\n");
    for (let code = 1; code < 134; code++) {
      const line = copyErrorLine(code, null);
      if (errnoWords(code) !== null) expect(line).not.toMatch(/errno \d/);
      expect(line).toMatch(/^qubes-air: File copy: [a-z]/);
    }
  });

  test("a broken copy is one line with what to do next", () => {
    expect(brokenCopyLine("to", "pi-gpg")).toBe(
      "qubes-air: the copy to pi-gpg broke off: the link or the daemon went away; " +
        "run it again when `qubes-air list` shows pi-gpg up\n",
    );
    expect(brokenCopyLine("from", "pi-gpg")).toContain("(incomplete files were not kept)");
    expect(brokenCopyLine("from", "pi-gpg").split("\n")).toHaveLength(2);
  });
});
