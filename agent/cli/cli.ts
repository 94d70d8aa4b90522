/**
 * What every command shares: its help text, argument parsing that turns mistakes into usage
 * errors (ConfigError, exit 2), and the --config default.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { ConfigError } from "../../core/errors.ts";
import { DEFAULT_CONFIG_PATH } from "../config.ts";

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Full help, examples included. */
  readonly help: string;
  /** Returns the exit status. Throws ConfigError for usage and configuration faults. */
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parse<O extends Options>(
  command: string,
  args: string[],
  options: O,
  positionals = false,
): { values: Record<string, string | boolean | undefined>; positionals: string[]; help: boolean } {
  try {
    const r = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: positionals,
      strict: true,
    });
    const values = r.values as Record<string, string | boolean | undefined>;
    return { values, positionals: r.positionals, help: values.help === true };
  } catch (error) {
    throw usage(command, (error as Error).message);
  }
}

export function usage(command: string, what: string): ConfigError {
  return new ConfigError(`${what}\nRun: qubes-air-agent ${command} --help`);
}

export function configPath(values: Record<string, unknown>): string {
  return typeof values.config === "string" ? values.config : DEFAULT_CONFIG_PATH;
}

export const CONFIG_OPTION = { config: { type: "string" } } as const;

export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}
