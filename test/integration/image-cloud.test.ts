/**
 * `qubes-air image cloud`: the user-data passes `cloud-init schema`, stays under AWS's 16 KiB,
 * carries the VM's agent config (the agent's own parser accepts it), token (0600) and the
 * first-boot install of the agent package (none of the package's own files); the fetch script
 * refuses a download with the wrong sha256 and keeps a good one; --embed-agent round-trips the
 * package; the command runs as an unprivileged user. (Its OpenTofu modules:
 * image-cloud-tofu.test.ts.)
 * (The whole runcmd, package install included, runs in a Debian root in image-first-boot.test.ts.)
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../agent/config.ts";
import { CLOUD_DEB, FETCH_SCRIPT } from "../../images/cloud-files.ts";
import { PATHS } from "../../images/device-files.ts";
import { INSTALL, installScript } from "../../images/first-boot-install.ts";
import { AGENT_PATHS } from "../../packaging/layout.ts";
import { has, openDir, removeDirs, runImageCli } from "../fixtures/images/helpers.ts";
import { lacking } from "../helpers/requires.ts";

const dir = openDir("qa-image-cloud-");
afterAll(removeDirs);

type WriteFile = { path: string; permissions: string; owner: string; content: string; encoding?: string };
type UserData = { write_files: WriteFile[]; runcmd: string[][] };

function parseUserData(path: string): UserData {
  const text = readFileSync(path, "utf8");
  expect(text.startsWith("#cloud-config\n")).toBe(true);
  return Bun.YAML.parse(text) as UserData;
}

function schema(path: string): { ok: boolean; out: string } {
  const r = spawnSync("cloud-init", ["schema", "--config-file", path]);
  return { ok: r.status === 0, out: r.stdout.toString() + r.stderr.toString() };
}

/** A tiny package that calls itself qubes-air-agent for `arch` (made with dpkg-deb). */
function fakePackage(at: string, arch: string): Buffer {
  const root = `${at}.root`;
  mkdirSync(join(root, "DEBIAN"), { recursive: true });
  writeFileSync(
    join(root, "DEBIAN/control"),
    `Package: qubes-air-agent\nVersion: 9.9\nArchitecture: ${arch}\nMaintainer: t <t@example.org>\nDescription: t\n`,
  );
  const r = spawnSync("dpkg-deb", ["--root-owner-group", "--build", root, at]);
  expect(r.status).toBe(0);
  return readFileSync(at);
}

describe("image cloud", () => {
  const sha = "ab".repeat(32);

  test("URL mode: user-data (0600), token; cloud-init schema accepts it", () => {
    const out = join(dir, "build1");
    const r = runImageCli(
      [
        "cloud",
        "--name",
        "build1",
        "--port",
        "7443",
        "--agent-url",
        "https://example.org/qa/agent",
        "--agent-sha256",
        sha,
        "--out",
        out,
      ],
      dir,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const token = /pairing token[^\n]*\n {2}([0-9a-f]{64})\n/.exec(r.stdout)![1]!;
    expect(r.stdout).toContain(`qubes-air pair build1 --tcp VM-ADDRESS:7443 --zone cloud --token ${token}`);
    expect(statSync(join(out, "user-data")).mode & 0o777).toBe(0o600);
    const ud = parseUserData(join(out, "user-data"));
    const byPath = new Map(ud.write_files.map((f) => [f.path, f]));
    expect(byPath.get(PATHS.token)).toMatchObject({
      permissions: "0600",
      owner: "root:root",
      content: `${token}\n`,
    });
    const config = JSON.parse(byPath.get(PATHS.config)!.content);
    expect(config).toEqual({
      name: "build1",
      listen: { tcp: "0.0.0.0:7443" },
      stateDir: PATHS.stateDir,
      policyDir: PATHS.policyDir,
    });
    expect(() => parseConfig(config, "agent.json")).not.toThrow();
    // The package installs its own files (binary, unit, policy): none of them is in user-data.
    for (const p of [AGENT_PATHS.bin, AGENT_PATHS.unit, AGENT_PATHS.policy])
      expect(byPath.has(p)).toBe(false);
    expect(byPath.get(FETCH_SCRIPT)).toMatchObject({ permissions: "0755" });
    expect(byPath.get(FETCH_SCRIPT)!.content).toContain(`sum='${sha}'`);
    expect(byPath.get(INSTALL.script)).toMatchObject({ permissions: "0755" });
    expect(byPath.get(INSTALL.script)!.content).toBe(installScript(CLOUD_DEB));
    expect(ud.runcmd).toEqual([
      ["chmod", "0700", PATHS.stateDir, INSTALL.dir],
      [FETCH_SCRIPT],
      [INSTALL.script],
    ]);
    // AWS takes at most 16 KiB of user-data.
    expect(statSync(join(out, "user-data")).size).toBeLessThan(16 * 1024);
    if (has("cloud-init")) {
      const s = schema(join(out, "user-data"));
      expect(s.out).toContain("Valid cloud-config");
      expect(s.ok).toBe(true);
    }
    // The files exist now: no silent overwrite.
    const again = runImageCli(
      [
        "cloud",
        "--name",
        "build1",
        "--agent-url",
        "https://example.org/a",
        "--agent-sha256",
        sha,
        "--out",
        out,
      ],
      dir,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("exists: choose another --out, or add --force");
  });

  test("--embed-agent puts the package in (base64); another package is refused", () => {
    mkdirSync(join(dir, "pkg"), { recursive: true });
    const agentPath = join(dir, "pkg", "qubes-air-agent_9.9_amd64.deb");
    const bytes = fakePackage(agentPath, "amd64");
    const out = join(dir, "embed");
    const r = runImageCli(
      ["cloud", "--name", "gpu.1", "--embed-agent", "--agent", agentPath, "--out", out],
      dir,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const ud = parseUserData(join(out, "user-data"));
    const agent = ud.write_files.find((f) => f.path === `${INSTALL.dir}/${CLOUD_DEB}`)!;
    expect(agent).toMatchObject({ encoding: "b64", permissions: "0644" });
    expect(Buffer.from(agent.content, "base64").equals(bytes)).toBe(true);
    expect(ud.runcmd).toEqual([["chmod", "0700", PATHS.stateDir, INSTALL.dir], [INSTALL.script]]);
    const arm = join(dir, "pkg-arm", "qubes-air-agent_9.9_arm64.deb");
    mkdirSync(join(dir, "pkg-arm"), { recursive: true });
    fakePackage(arm, "arm64");
    const refused = runImageCli(
      ["cloud", "--name", "gpu2", "--embed-agent", "--agent", arm, "--out", join(dir, "arm")],
      dir,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("is not the amd64 agent package");
    if (has("cloud-init")) expect(schema(join(out, "user-data")).ok).toBe(true);
  });

  test.skipIf(lacking(has("curl") || has("wget") ? null : "curl or wget"))(
    "the fetch script keeps a good download and refuses a bad one",
    async () => {
      const payload = Buffer.from("#!/bin/sh\necho agent\n");
      const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(payload) });
      try {
        const good = createHash("sha256").update(payload).digest("hex");
        const out = join(dir, "script");
        const r = runImageCli(
          [
            "cloud",
            "--name",
            "s1",
            "--agent-url",
            `http://127.0.0.1:${server.port}/agent`,
            "--agent-sha256",
            good,
            "--out",
            out,
          ],
          dir,
        );
        expect(r.code).toBe(0);
        const script = parseUserData(join(out, "user-data")).write_files.find(
          (f) => f.path === FETCH_SCRIPT,
        )!.content;
        const dest = join(dir, "bin", CLOUD_DEB);
        mkdirSync(join(dir, "bin"), { recursive: true });
        // Asynchronously: the server answers from this process's event loop.
        const runScript = async (text: string) => {
          const p = Bun.spawn(
            ["sh", "-c", text.replace(`dest=${INSTALL.dir}/${CLOUD_DEB}`, `dest=${dest}`)],
            {
              env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
              stdout: "ignore",
              stderr: "pipe",
            },
          );
          const [stderr, status] = await Promise.all([new Response(p.stderr).text(), p.exited]);
          return { stderr, status };
        };
        const ok = await runScript(script);
        expect(ok.stderr).toBe("");
        expect(ok.status).toBe(0);
        expect(readFileSync(dest).equals(payload)).toBe(true);
        rmSync(dest);
        const bad = await runScript(script.replace(good, "0".repeat(64)));
        expect(bad.status).toBe(1);
        expect(bad.stderr).toContain("has the wrong sha256");
        expect(() => statSync(dest)).toThrow();
      } finally {
        server.stop(true);
      }
    },
  );

  test("usage errors", () => {
    const cases: [string[], RegExp][] = [
      [["--name", "b1"], /give --agent-url URL .* or --embed-agent/],
      [["--name", "1b", "--embed-agent"], /--name NAME is required/],
      [["--name", "b1", "--agent-url", "ftp://x/y", "--agent-sha256", sha], /must be an http\(s\) URL/],
      [["--name", "b1", "--agent-url", "https://x/y", "--agent-sha256", "12"], /64 hex digits/],
      [["--name", "b1", "--embed-agent", "--port", "70000"], /--port must be 1-65535/],
    ];
    for (const [args, re] of cases) {
      const r = runImageCli(["cloud", ...args], dir);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(re);
    }
  });
});
