/**
 * `qubes-air image cloud`: the user-data passes `cloud-init schema`, carries the agent config (the
 * agent's own parser accepts it), policy, token (0600) and unit; the install script refuses a
 * download with the wrong sha256 and installs a good one; --embed-agent round-trips the binary;
 * main.tf hands the user-data to a VM; the command runs as an unprivileged user.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { parseConfig } from "../../agent/config.ts";
import { INSTALL_SCRIPT } from "../../images/cloud-files.ts";
import { PATHS } from "../../images/device-files.ts";
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

/** A tiny stand-in for the x64 agent: an ELF header for x86-64 and some bytes. */
function fakeAgent(at: string): Buffer {
  const b = Buffer.alloc(4096, 7);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2;
  b[5] = 1;
  b.writeUInt16LE(62, 18);
  mkdirSync(join(at, ".."), { recursive: true });
  writeFileSync(at, b, { mode: 0o755 });
  return b;
}

describe("image cloud", () => {
  const sha = "ab".repeat(32);

  test("URL mode: user-data (0600), main.tf, token; cloud-init schema accepts it", () => {
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
    expect(byPath.get(PATHS.policy)!.content).toContain("qubes.Filecopy");
    expect(byPath.get(PATHS.unit)!.content).toContain(
      `ExecStart=${PATHS.agent} run --config ${PATHS.config}`,
    );
    expect(byPath.get(INSTALL_SCRIPT)).toMatchObject({ permissions: "0755" });
    expect(byPath.get(INSTALL_SCRIPT)!.content).toContain(`sum='${sha}'`);
    expect(ud.runcmd).toEqual([
      [INSTALL_SCRIPT],
      ["chmod", "0700", PATHS.stateDir],
      ["systemctl", "daemon-reload"],
      ["systemctl", "enable", "--now", "qubes-air-agent.service"],
    ]);
    if (has("cloud-init")) {
      const s = schema(join(out, "user-data"));
      expect(s.out).toContain("Valid cloud-config");
      expect(s.ok).toBe(true);
    }
    const tf = readFileSync(join(out, "main.tf"), "utf8");
    expect(tf).toContain('resource "hcloud_server" "build1"');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform's own interpolation
    expect(tf).toContain('user_data    = file("${path.module}/user-data")');
    expect(tf).toContain('port       = "7443"');
    expect(tf.split("{").length).toBe(tf.split("}").length);
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

  test("--embed-agent puts the binary in (gzip+base64) and the AWS example uses it", () => {
    const agentPath = join(dir, "dist", "qubes-air-agent-linux-x64");
    const bytes = fakeAgent(agentPath);
    const out = join(dir, "embed");
    const r = runImageCli(
      ["cloud", "--name", "gpu.1", "--embed-agent", "--agent", agentPath, "--provider", "aws", "--out", out],
      dir,
    );
    expect(r.code).toBe(0);
    const ud = parseUserData(join(out, "user-data"));
    const agent = ud.write_files.find((f) => f.path === PATHS.agent)!;
    expect(agent).toMatchObject({ encoding: "gz+b64", permissions: "0755" });
    expect(gunzipSync(Buffer.from(agent.content, "base64")).equals(bytes)).toBe(true);
    expect(ud.runcmd[0]).toEqual(["chmod", "0700", PATHS.stateDir]);
    if (has("cloud-init")) expect(schema(join(out, "user-data")).ok).toBe(true);
    const tf = readFileSync(join(out, "main.tf"), "utf8");
    expect(tf).toContain('resource "aws_instance" "gpu_1"');
    expect(tf).toContain("user_data_replace_on_change = true");
    expect(tf).toContain('Name = "gpu-1"');
  });

  test.skipIf(lacking(has("curl") || has("wget") ? null : "curl or wget"))(
    "the install script installs a good download and refuses a bad one",
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
          (f) => f.path === INSTALL_SCRIPT,
        )!.content;
        const dest = join(dir, "bin", "qubes-air-agent");
        mkdirSync(join(dir, "bin"), { recursive: true });
        // Asynchronously: the server answers from this process's event loop.
        const runScript = async (text: string) => {
          const p = Bun.spawn(["sh", "-c", text.replace(`dest=${PATHS.agent}`, `dest=${dest}`)], {
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
            stdout: "ignore",
            stderr: "pipe",
          });
          const [stderr, status] = await Promise.all([new Response(p.stderr).text(), p.exited]);
          return { stderr, status };
        };
        const ok = await runScript(script);
        expect(ok.stderr).toBe("");
        expect(ok.status).toBe(0);
        expect(readFileSync(dest).equals(payload)).toBe(true);
        expect(statSync(dest).mode & 0o777).toBe(0o755);
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
      [["--name", "b1", "--embed-agent", "--provider", "gcp"], /hcloud or aws/],
    ];
    for (const [args, re] of cases) {
      const r = runImageCli(["cloud", ...args], dir);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(re);
    }
  });
});
