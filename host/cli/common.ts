/**
 * What every `qubes-air` command shares: the Command shape, strict argument parsing with
 * node:util parseArgs (unknown options and missing values are usage errors: exit 2), --help,
 * the state/socket options, and output helpers.
 */
import { hostname } from "node:os";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { isQubeName } from "../../core/qrexec/names.ts";
import { type Env, type HostPaths, hostPaths } from "../paths.ts";

export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The full --help text: usage, options, examples. */
  readonly help: string;
  /** Has subcommands with their own --help (`image build --help`): main passes those through. */
  readonly subcommands?: readonly string[];
  run(args: string[], ctx: CliContext): Promise<number>;
}

export interface CliContext {
  readonly env: Env;
  out(text: string): void;
  err(text: string): void;
}

/** A mistake in the command line: the message, then the command's usage; exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export const COMMON_OPTIONS = {
  state: { type: "string" },
  socket: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export const COMMON_HELP = `Common options:
  --state DIR     state directory (default $QUBES_AIR_STATE or ~/.local/share/qubes-air)
  --socket PATH   daemon socket (default $QUBES_AIR_SOCKET or $XDG_RUNTIME_DIR/qubes-air/daemon.sock)
  -h, --help      show this help`;

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed<O extends Options> {
  values: ReturnType<
    typeof parseArgs<{ options: O & typeof COMMON_OPTIONS; allowPositionals: true; strict: true }>
  >["values"];
  positionals: string[];
}

export function parse<O extends Options>(args: string[], options: O): Parsed<O> {
  try {
    const r = parseArgs({
      args,
      options: { ...COMMON_OPTIONS, ...options },
      allowPositionals: true,
      strict: true,
    });
    return r as unknown as Parsed<O>;
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0] ?? "bad arguments");
  }
}

export function pathsOf(ctx: CliContext, values: { state?: unknown; socket?: unknown }): HostPaths {
  return hostPaths(ctx.env, {
    ...(typeof values.state === "string" ? { state: values.state } : {}),
    ...(typeof values.socket === "string" ? { socket: values.socket } : {}),
  });
}

/** The source qube of a call started here: the qube name (a Qubes VM's hostname) or "sys-remote". */
export function localQubeName(): string {
  const h = hostname();
  return isQubeName(h) ? h : "sys-remote";
}

export function qubeArg(value: string | undefined, what: string): string {
  if (value === undefined) throw new UsageError(`missing ${what}`);
  if (!isQubeName(value))
    throw new UsageError(`${what} must be a qube name (a letter, then letters, digits, _ . -)`);
  return value;
}

export function integerOption(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== "string" || !/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}`);
  }
  return n;
}
