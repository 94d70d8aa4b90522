/**
 * `bun run build` (scripts/build.ts): every artefact is built for its target, runs where this
 * machine can run it (x64 natively, arm64 under qemu-aarch64-static -cpu cortex-a53, the Node
 * bundle under node) and prints its version; dist/manifest.json has the right sha256 and size.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ARTEFACTS, sha256File } from "../../scripts/build.ts";
import { ensureDist, has, openDir, ROOT, removeDirs } from "../fixtures/images/helpers.ts";

afterAll(removeDirs);

const ELF_MACHINE: Record<string, number> = { "bun-linux-arm64": 183, "bun-linux-x64-baseline": 62 };

describe("bun run build", () => {
  test("all artefacts, their targets, versions and the manifest", () => {
    const dist = ensureDist(ARTEFACTS.map((a) => a.id));
    const manifest = JSON.parse(readFileSync(join(dist, "manifest.json"), "utf8"));
    const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    expect(manifest.version).toBe(version);
    expect(manifest.bun).toBe(Bun.version);
    expect(manifest.artefacts.map((a: { file: string }) => a.file)).toEqual(ARTEFACTS.map((a) => a.file));
    for (const entry of manifest.artefacts as {
      file: string;
      target: string;
      size: number;
      sha256: string;
    }[]) {
      const path = join(dist, entry.file);
      expect(entry.size).toBe(statSync(path).size);
      expect(entry.sha256).toBe(sha256File(path));
      const head = readFileSync(path).subarray(0, 20);
      if (entry.target === "node-esm") {
        expect(head.readUInt32BE(0)).not.toBe(0x7f454c46);
      } else {
        expect({ file: entry.file, machine: head.readUInt16LE(18) }).toEqual({
          file: entry.file,
          machine: ELF_MACHINE[entry.target]!,
        });
        expect(statSync(path).mode & 0o111).not.toBe(0);
      }
    }
    const ver = (argv: string[]) =>
      spawnSync(argv[0]!, [...argv.slice(1), "--version"], { timeout: 60_000 }).stdout.toString();
    expect(ver([join(dist, "qubes-air-agent-linux-x64")])).toContain(`qubes-air-agent ${version}`);
    expect(ver([join(dist, "qubes-air-linux-x64")])).toContain(`qubes-air ${version}`);
    if (has("node"))
      expect(ver(["node", join(dist, "qubes-air-agent-node.mjs")])).toContain(`qubes-air-agent ${version}`);
    if (has("qemu-aarch64-static") && existsSync("/lib/ld-linux-aarch64.so.1")) {
      expect(
        ver(["qemu-aarch64-static", "-cpu", "cortex-a53", join(dist, "qubes-air-agent-linux-arm64")]),
      ).toContain(`qubes-air-agent ${version}`);
    }
  }, 180_000);

  test("the script: --out, --only, progress lines, a manifest of what is there", () => {
    const out = openDir("qa-build-cli-");
    const r = spawnSync(
      process.execPath,
      [join(ROOT, "scripts/build.ts"), "--out", out, "--only", "agent-node"],
      { cwd: ROOT },
    );
    const stderr = r.stderr.toString();
    expect(r.status).toBe(0);
    expect(stderr).toMatch(/\[1\/1\] qubes-air-agent-node\.mjs \(node-esm\) \.\.\./);
    expect(stderr).toMatch(/--version: qubes-air-agent \d+\.\d+\.\d+/);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.artefacts.map((a: { file: string }) => a.file)).toEqual(["qubes-air-agent-node.mjs"]);
    const bad = spawnSync(process.execPath, [join(ROOT, "scripts/build.ts"), "--only", "nope"], {
      cwd: ROOT,
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr.toString()).toContain("unknown artefact nope");
  }, 60_000);
});
