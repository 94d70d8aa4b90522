/**
 * What every `qubes-air` command shares on top of the CLI kit (platform/cli/: the Command type,
 * strict parsing, --help and exit statuses): the state/socket options, their help, and argument
 * checks for qube names and integers.
 */
import { hostname } from "node:os";
import { UsageError } from "../../core/cli/usage-error.ts";
import { isQubeName } from "../../core/qrexec/names.ts";
import type { CliContext } from "../../platform/cli/command.ts";
import { type Options, type Parsed, parseCommandLine } from "../../platform/cli/parse.ts";
import { type HostPaths, hostPaths } from "../paths.ts";

export type { CliContext, Command } from "../../platform/cli/command.ts";
export { UsageError };

export const COMMON_OPTIONS = {
  state: { type: "string" },
  socket: { type: "string" },
} as const satisfies Options;

export const COMMON_HELP = `Common options:
  --state DIR     state directory (default $QUBES_AIR_STATE or ~/.local/share/qubes-air)
  --socket PATH   daemon socket (default $QUBES_AIR_SOCKET, /run/qubes-air/daemon.sock, or
                  $XDG_RUNTIME_DIR/qubes-air/daemon.sock)
  -h, --help      show this help`;

/** Strict parsing (platform/cli/parse.ts) with the common options added. */
export function parse<O extends Options>(args: string[], options: O): Parsed<O & typeof COMMON_OPTIONS> {
  return parseCommandLine(args, { ...COMMON_OPTIONS, ...options });
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
