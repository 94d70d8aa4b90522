/**
 * What the agent's commands share on top of the CLI kit (platform/cli/: the Command type,
 * strict parsing, --help and exit statuses): parsing with loose value types, the --config
 * option and its default, and printing a result line.
 */
import type { Options } from "../../platform/cli/parse.ts";
import { parseCommandLine } from "../../platform/cli/parse.ts";
import { DEFAULT_CONFIG_PATH } from "../config.ts";

export type { CliContext, Command } from "../../platform/cli/command.ts";

/**
 * Strict parsing (mistakes are UsageErrors, exit 2). `_command` names the caller for readers;
 * the dispatcher adds "Run: qubes-air-agent COMMAND --help" to the message itself.
 */
export function parse(
  _command: string,
  args: string[],
  options: Options,
  positionals = false,
): { values: Record<string, string | boolean | undefined>; positionals: string[]; help: boolean } {
  const r = parseCommandLine(args, options, { positionals });
  const values = r.values as Record<string, string | boolean | undefined>;
  return { values, positionals: r.positionals, help: values.help === true };
}

export function configPath(values: Record<string, unknown>): string {
  return typeof values.config === "string" ? values.config : DEFAULT_CONFIG_PATH;
}

export const CONFIG_OPTION = { config: { type: "string" } } as const;

export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}
