/**
 * Strict command-line parsing for every qubes-air CLI: node:util parseArgs with strict: true, so
 * an unknown option, a missing value or an unexpected argument is a UsageError (exit 2) with
 * parseArgs' first line as the message. -h/--help is always accepted here (the dispatcher has
 * answered it before a command runs).
 * Must never: accept an option it was not told about, or turn our own bug (a bad option table)
 * into a usage error.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "../../core/cli/usage-error.ts";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export const HELP_OPTION = { help: { type: "boolean", short: "h" } } as const satisfies Options;

type WithHelp<O extends Options> = O & typeof HELP_OPTION;

export interface Parsed<O extends Options> {
  values: ReturnType<
    typeof parseArgs<{ options: WithHelp<O>; allowPositionals: true; strict: true }>
  >["values"];
  positionals: string[];
}

export function parseCommandLine<O extends Options>(
  args: readonly string[],
  options: O,
  { positionals = true }: { positionals?: boolean } = {},
): Parsed<O> {
  try {
    const r = parseArgs({
      args: [...args],
      options: { ...options, ...HELP_OPTION },
      allowPositionals: positionals,
      strict: true,
    });
    return r as unknown as Parsed<O>;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS_")) throw e;
    throw new UsageError((e as Error).message.split("\n")[0] || "bad arguments");
  }
}

/** True if -h/--help comes before a `--` (after it, "-h" is an argument such as a file name). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}
