/**
 * The one dispatcher of every qubes-air CLI: picks the command (and subcommand), answers -h and
 * --help itself (so every command and subcommand has it, and no command handles it again), and
 * turns what a command throws into a message and an exit status from core/cli/exit-codes.ts:
 *   UsageError   "<prog> <cmd>: <message>", the usage line, "Run: <prog> <cmd> --help"; USAGE
 *   ConfigError  "<prog> <cmd>: <message>"; its exitCode (USAGE unless it says FAILURE)
 *   anything else "<prog> <cmd>: <message>"; FAILURE
 * Must never: write to the process itself (everything goes through the context), or run a
 * command when --help was asked for.
 */
import { EXIT } from "../../core/cli/exit-codes.ts";
import { UsageError } from "../../core/cli/usage-error.ts";
import { ConfigError } from "../../core/errors.ts";
import type { CliContext, Command, Program } from "./command.ts";
import { wantsHelp } from "./parse.ts";

/** `PROG COMMAND ...`: the overview for no command (stderr, USAGE) or help (stdout, OK). */
export async function runProgram(
  program: Program,
  argv: readonly string[],
  ctx: CliContext,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    ctx.err(overview(program));
    return EXIT.USAGE;
  }
  if (name === "help" || name === "--help" || name === "-h") {
    ctx.out(overview(program));
    return EXIT.OK;
  }
  const command =
    name === "--version" && program.version ? program.version : program.commands.find((c) => c.name === name);
  if (!command) {
    ctx.err(`${program.name}: unknown command "${name.slice(0, 40)}"\n\n${overview(program)}`);
    return EXIT.USAGE;
  }
  return runCommand(`${program.name} ${command.name}`, command, rest, ctx);
}

/** One command by its full name (`qubes-air image`): subcommand, --help, errors to statuses. */
export async function runCommand(
  path: string,
  command: Command,
  args: readonly string[],
  ctx: CliContext,
): Promise<number> {
  const sub = command.subcommands?.find((c) => c.name === args[0]);
  if (sub) return runCommand(`${path} ${sub.name}`, sub, args.slice(1), ctx);
  if (wantsHelp(args)) {
    ctx.out(command.help.endsWith("\n") ? command.help : `${command.help}\n`);
    return EXIT.OK;
  }
  try {
    if (!command.run) {
      const names = (command.subcommands ?? []).map((c) => c.name).join(" or ");
      throw new UsageError(
        args[0] === undefined ? `give ${names}` : `unknown ${names} "${args[0].slice(0, 40)}"`,
      );
    }
    return await command.run([...args], ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      ctx.err(usageMessage(path, e.message, command.help));
      return EXIT.USAGE;
    }
    ctx.err(`${path}: ${e instanceof Error ? e.message : String(e)}\n`);
    return e instanceof ConfigError ? e.exitCode : EXIT.FAILURE;
  }
}

/** What a usage error shows: the message, the command's usage paragraph and where to read more. */
export function usageMessage(path: string, message: string, help: string): string {
  return `${path}: ${message}\n\n${help.split("\n\n")[0]}\nRun: ${path} --help\n`;
}

export function overview(program: Program): string {
  const width = Math.max(...program.commands.map((c) => c.name.length));
  const lines = program.commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  const examples = program.examples?.length
    ? `Examples:\n${program.examples.map((e) => `  ${e}`).join("\n")}\n`
    : "";
  return `Usage: ${program.name} COMMAND [options]

${program.about}

Commands:
${lines.join("\n")}

Run "${program.name} COMMAND --help" for a command's options and examples.
${examples}`;
}
