/**
 * Ctrl-C during `image build` (run as an unprivileged user): it stops, removes IMG.partial,
 * leaves no IMG and exits 130.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { agentDeb, asNobodyIfRoot, imageCliArgv, openDir, removeDirs } from "../fixtures/images/helpers.ts";
import { makePiBase, missingTools } from "../fixtures/images/make-base.ts";
import { lacking } from "../helpers/requires.ts";

afterAll(removeDirs);
const missing = missingTools();

describe.skipIf(lacking(missing.length > 0 ? missing.join(", ") : null))("image build interrupted", () => {
  test("SIGINT while copying: exit 130, nothing left behind", async () => {
    const dir = openDir("qa-image-int-");
    const agent = agentDeb("arm64");
    const base = makePiBase(dir, "bookworm", 1200);
    const out = join(dir, "int.img");
    const argv = [
      ...imageCliArgv(process.getuid?.() === 0),
      "build",
      "--board",
      "pi4",
      "--base",
      base,
      "--out",
      out,
      "--agent",
      agent,
    ];
    const proc = Bun.spawn(asNobodyIfRoot(argv), {
      cwd: dir,
      env: { PATH: `/usr/sbin:/sbin:${process.env.PATH}`, HOME: dir },
      stdout: "ignore",
      stderr: "pipe",
    });
    const reader = proc.stderr.getReader();
    let stderr = "";
    while (!stderr.includes("copying ")) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += new TextDecoder().decode(value);
    }
    proc.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += new TextDecoder().decode(value);
    }
    expect(await proc.exited).toBe(130);
    expect(stderr).toContain("interrupted; ");
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(existsSync(out)).toBe(false);
  }, 60_000);
});
