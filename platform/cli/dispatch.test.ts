/**
 * The CLI kit's dispatcher with a small made-up program: unknown commands, --help on commands and
 * subcommands (answered before a command runs), usage errors with the hint, ConfigError and other
 * failures, all with statuses from core/cli/exit-codes.ts.
 */
import { describe, expect, test } from "bun:test";
import { EXIT, EXIT_REASONS, isTableStatus } from "../../core/cli/exit-codes.ts";
import { UsageError } from "../../core/cli/usage-error.ts";
import { ConfigError } from "../../core/errors.ts";
import type { Command, Program } from "./command.ts";
import { runCommand, runProgram } from "./dispatch.ts";
import { parseCommandLine, wantsHelp } from "./parse.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    ctx: { env: {}, out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

const ran: string[][] = [];
const echo: Command = {
  name: "echo",
  summary: "print the arguments",
  help: "Usage: demo echo [--loud] WORD...\n\nPrints WORDs.\n\nExamples:\n  demo echo hi",
  async run(args, ctx) {
    ran.push(args);
    const { values, positionals } = parseCommandLine(args, { loud: { type: "boolean" } });
    if (positionals.length === 0) throw new UsageError("give at least one WORD");
    ctx.out(`${values.loud ? positionals.join(" ").toUpperCase() : positionals.join(" ")}\n`);
    return EXIT.OK;
  },
};
const fail = (name: string, error: unknown): Command => ({
  name,
  summary: name,
  help: `Usage: demo ${name}`,
  run: async () => {
    throw error;
  },
});
const group: Command = {
  name: "disk",
  summary: "disk things",
  help: "Usage: demo disk write|check",
  subcommands: [
    { name: "write", summary: "write", help: "Usage: demo disk write FILE", run: async () => EXIT.OK },
    {
      name: "check",
      summary: "check",
      help: "Usage: demo disk check FILE",
      run: async () => EXIT.VERIFY_FAILED,
    },
  ],
};
const version: Command = {
  name: "version",
  summary: "version",
  help: "Usage: demo version",
  async run(_args, ctx) {
    ctx.out("demo 1\n");
    return EXIT.OK;
  },
};
const DEMO: Program = {
  name: "demo",
  about: "A program for the kit's tests.",
  commands: [
    echo,
    group,
    fail("config", new ConfigError("key file k has mode 0644")),
    fail("io", new ConfigError("cannot read f", EXIT.FAILURE)),
    fail("boom", new Error("something broke")),
    version,
  ],
  examples: ["demo echo hi"],
  version,
};

describe("runProgram", () => {
  test("no command: the overview on stderr, USAGE; help: on stdout, OK", async () => {
    const none = capture();
    expect(await runProgram(DEMO, [], none.ctx)).toBe(EXIT.USAGE);
    expect(none.err()).toStartWith("Usage: demo COMMAND [options]\n\nA program for the kit's tests.");
    expect(none.err()).toContain("  echo     print the arguments\n");
    expect(none.err()).toContain('Run "demo COMMAND --help"');
    for (const h of ["help", "--help", "-h"]) {
      const c = capture();
      expect(await runProgram(DEMO, [h], c.ctx)).toBe(EXIT.OK);
      expect(c.out()).toBe(none.err());
    }
  });

  test("an unknown command is USAGE, named (cut short) and followed by the overview", async () => {
    const c = capture();
    expect(await runProgram(DEMO, ["frobnicate", "--help"], c.ctx)).toBe(EXIT.USAGE);
    expect(c.err()).toStartWith('demo: unknown command "frobnicate"\n\nUsage: demo COMMAND');
    const long = capture();
    await runProgram(DEMO, ["x".repeat(100)], long.ctx);
    expect(long.err()).toStartWith(`demo: unknown command "${"x".repeat(40)}"`);
  });

  test("--version runs the version command", async () => {
    const c = capture();
    expect(await runProgram(DEMO, ["--version"], c.ctx)).toBe(EXIT.OK);
    expect(c.out()).toBe("demo 1\n");
  });

  test("--help on each command and subcommand prints its help and runs nothing", async () => {
    ran.length = 0;
    for (const argv of [["echo"], ["disk"], ["disk", "write"], ["disk", "check"], ["config"], ["boom"]]) {
      for (const h of ["--help", "-h"]) {
        const c = capture();
        expect(await runProgram(DEMO, [...argv, "a", h], c.ctx)).toBe(EXIT.OK);
        expect(c.out()).toStartWith(`Usage: demo ${argv.join(" ")}`);
        expect(c.out()).toEndWith("\n");
        expect(c.err()).toBe("");
      }
    }
    expect(ran).toEqual([]);
  });

  test("after --, -h is an argument", async () => {
    const c = capture();
    expect(await runProgram(DEMO, ["echo", "--", "-h"], c.ctx)).toBe(EXIT.OK);
    expect(c.out()).toBe("-h\n");
    expect(wantsHelp(["a", "--", "--help"])).toBe(false);
    expect(wantsHelp(["a", "--help", "--"])).toBe(true);
  });

  test("a usage error is USAGE with the message, the usage line and the hint", async () => {
    const c = capture();
    expect(await runProgram(DEMO, ["echo"], c.ctx)).toBe(EXIT.USAGE);
    expect(c.err()).toBe(
      "demo echo: give at least one WORD\n\nUsage: demo echo [--loud] WORD...\nRun: demo echo --help\n",
    );
    const unknown = capture();
    expect(await runProgram(DEMO, ["echo", "--colour", "x"], unknown.ctx)).toBe(EXIT.USAGE);
    expect(unknown.err()).toStartWith("demo echo: Unknown option '--colour'");
    expect(unknown.err()).toEndWith("Run: demo echo --help\n");
  });

  test("a group without its subcommand, or with an unknown one, is a usage error", async () => {
    const none = capture();
    expect(await runProgram(DEMO, ["disk"], none.ctx)).toBe(EXIT.USAGE);
    expect(none.err()).toBe(
      "demo disk: give write or check\n\nUsage: demo disk write|check\nRun: demo disk --help\n",
    );
    const bad = capture();
    expect(await runProgram(DEMO, ["disk", "erase"], bad.ctx)).toBe(EXIT.USAGE);
    expect(bad.err()).toStartWith('demo disk: unknown write or check "erase"');
    expect(await runProgram(DEMO, ["disk", "check", "f"], capture().ctx)).toBe(EXIT.VERIFY_FAILED);
  });

  test("ConfigError exits with its status (USAGE by default); anything else is FAILURE", async () => {
    for (const [name, status, message] of [
      ["config", EXIT.USAGE, "demo config: key file k has mode 0644\n"],
      ["io", EXIT.FAILURE, "demo io: cannot read f\n"],
      ["boom", EXIT.FAILURE, "demo boom: something broke\n"],
    ] as const) {
      const c = capture();
      expect(await runProgram(DEMO, [name], c.ctx)).toBe(status);
      expect(c.err()).toBe(message);
    }
  });

  test("runCommand runs one command by its full name (a standalone entry point)", async () => {
    const c = capture();
    expect(await runCommand("qubes-air image", group, ["write", "--bogus", "-h"], c.ctx)).toBe(EXIT.OK);
    expect(c.out()).toBe("Usage: demo disk write FILE\n");
  });
});

describe("parseCommandLine", () => {
  test("strict: unknown options, missing values and unwanted positionals are UsageErrors", () => {
    const opts = { out: { type: "string" } } as const;
    expect(parseCommandLine(["--out", "f", "x"], opts)).toMatchObject({
      values: { out: "f" },
      positionals: ["x"],
    });
    expect(parseCommandLine(["-h"], opts).values.help).toBe(true);
    for (const args of [["--bogus"], ["--out"], ["x"]]) {
      expect(() => parseCommandLine(args, opts, { positionals: false })).toThrow(UsageError);
    }
  });

  test("a bad option table is our bug, not a usage error", () => {
    const broken = { out: { type: "number" } } as unknown as Record<string, { type: "string" }>;
    expect(() => parseCommandLine([], broken)).not.toThrow(UsageError);
    expect(() => parseCommandLine([], broken)).toThrow();
  });
});

describe("the exit table", () => {
  test("one reason per status, each status once; ConfigError and UsageError use it", () => {
    const statuses = Object.values(EXIT);
    expect(new Set(statuses).size).toBe(statuses.length);
    for (const name of Object.keys(EXIT) as (keyof typeof EXIT)[])
      expect(EXIT_REASONS[name].length).toBeGreaterThan(0);
    expect(new ConfigError("x").exitCode).toBe(EXIT.USAGE);
    expect(new UsageError("x").exitCode).toBe(EXIT.USAGE);
    expect(new UsageError("x")).toBeInstanceOf(ConfigError);
    expect(isTableStatus(EXIT.INTERRUPTED)).toBe(true);
    expect(isTableStatus(4)).toBe(false);
  });
});
