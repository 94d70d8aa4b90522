/**
 * Walks every command and subcommand of both CLIs, `qubes-air` (with the image builder and the
 * flasher) and `qubes-air-agent`, through the CLI kit's dispatcher: --help prints the command's
 * own usage with examples and exits OK; an unknown option is a usage error with the hint; every
 * status seen is in core/cli/exit-codes.ts; and the command files return no bare numbers.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AGENT_PROGRAM } from "../../agent/cli/program.ts";
import { EXIT, type ExitName, isTableStatus } from "../../core/cli/exit-codes.ts";
import { HOST_PROGRAM } from "../../host/cli/program.ts";
import type { Command, Program } from "../../platform/cli/command.ts";
import { runProgram } from "../../platform/cli/dispatch.ts";
import { generateKeyFile } from "../../platform/key-file.ts";

const ROOT = resolve(import.meta.dir, "../..");

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    // A state directory that does not exist: nothing here may touch a real one.
    ctx: {
      env: { QUBES_AIR_STATE: "/nonexistent/qa-state", HOME: "/nonexistent" },
      out: (t: string) => void out.push(t),
      err: (t: string) => void err.push(t),
    },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

/** Every command path of a program: ["image"], ["image", "build"], ... */
function paths(commands: readonly Command[], prefix: string[] = []): string[][] {
  return commands.flatMap((c) => [[...prefix, c.name], ...paths(c.subcommands ?? [], [...prefix, c.name])]);
}

describe.each([
  ["qubes-air", HOST_PROGRAM],
  ["qubes-air-agent", AGENT_PROGRAM],
] as [string, Program][])("%s", (name, program) => {
  const all = paths(program.commands);

  test("the overview lists every command", async () => {
    const c = capture();
    expect(await runProgram(program, ["--help"], c.ctx)).toBe(EXIT.OK);
    for (const command of program.commands) expect(c.out()).toContain(`  ${command.name} `);
  });

  test.each(all.map((p) => [p.join(" "), p]))("%s --help: its usage with examples, OK", async (_, path) => {
    for (const help of ["--help", "-h"]) {
      const c = capture();
      const status = await runProgram(program, [...(path as string[]), help], c.ctx);
      expect([status, c.err()]).toEqual([EXIT.OK, ""]);
      expect(c.out().toLowerCase()).toStartWith(`usage: ${name} ${(path as string[]).join(" ")}`);
      expect(c.out()).toMatch(/Examples?:/);
    }
  });

  test.each(all.map((p) => [p.join(" "), p]))("%s --no-such-option: USAGE with the hint", async (_, path) => {
    const c = capture();
    const status = await runProgram(program, [...(path as string[]), "--no-such-option"], c.ctx);
    expect(isTableStatus(status)).toBe(true);
    expect(status).toBe(EXIT.USAGE);
    expect(c.err()).toContain(`Run: ${name} ${(path as string[]).join(" ")} --help`);
  });

  test("--version and an unknown command", async () => {
    const version = capture();
    expect(await runProgram(program, ["--version"], version.ctx)).toBe(EXIT.OK);
    expect(version.out()).toMatch(new RegExp(`^${name} \\d+\\.\\d+\\.\\d+`));
    expect(await runProgram(program, ["frobnicate"], capture().ctx)).toBe(EXIT.USAGE);
  });
});

test("the command files return statuses from the table, never bare numbers", () => {
  const files = [
    ...["host/cli", "agent/cli"].flatMap((d) =>
      readdirSync(join(ROOT, d))
        .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
        .map((f) => `${d}/${f}`),
    ),
    "images/flash.ts",
    "images/flash-main.ts",
    "images/image-main.ts",
  ];
  const bare = files.flatMap((f) =>
    readFileSync(join(ROOT, f), "utf8")
      .split("\n")
      .flatMap((line, i) =>
        /\breturn\s+\d+\s*;|process\.exit\(\s*\d|exitCode\s*=\s*\d/.test(line)
          ? [`${f}:${i + 1}: ${line.trim()}`]
          : [],
      ),
  );
  expect(bare).toEqual([]);
});

test("docs/exit-status.md shows the table: every status with its name", () => {
  const doc = readFileSync(join(ROOT, "docs/exit-status.md"), "utf8");
  for (const [name, status] of Object.entries(EXIT) as [ExitName, number][]) {
    expect(doc).toMatch(new RegExp(`\\|\\s*${status}\\s*\\|\\s*\`${name}\`\\s*\\|`));
  }
  const rows = doc.split("\n").filter((l) => /^\|\s*\d+\s*\|/.test(l));
  expect(rows.length).toBe(Object.keys(EXIT).length);
});

test("the same fault, the same status: a readable private key file is USAGE in sys-remote and on the device", async () => {
  const dir = mkdtempSync(join(tmpdir(), "qa-cli-key-"));
  try {
    chmodSync(dir, 0o700);
    await generateKeyFile(join(dir, "host.key"));
    await generateKeyFile(join(dir, "device.key"));
    chmodSync(join(dir, "host.key"), 0o644);
    chmodSync(join(dir, "device.key"), 0o644);
    const config = join(dir, "agent.json");
    writeFileSync(config, JSON.stringify({ name: "pi", listen: { tcp: "127.0.0.1:0" }, stateDir: dir }));
    const host = capture();
    const hostArgs = ["daemon", "--state", dir, "--socket", join(dir, "daemon.sock")];
    const agent = capture();
    const statuses = [
      await runProgram(HOST_PROGRAM, hostArgs, host.ctx),
      await runProgram(AGENT_PROGRAM, ["run", "--config", config], agent.ctx),
    ];
    expect(statuses).toEqual([EXIT.USAGE, EXIT.USAGE]);
    expect(host.err()).toMatch(/^qubes-air daemon: key file .*host\.key has mode 0644/);
    expect(agent.err()).toMatch(/^qubes-air-agent run: key file .*device\.key has mode 0644/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
