/**
 * The one command shape of every qubes-air CLI (host `qubes-air`, agent `qubes-air-agent`, the
 * image builder and the flasher). Why platform/: the kit wraps node:util parseArgs and the
 * process's streams, which core/ may not touch; agent/, host/ and images/ all sit above
 * platform/, so each may import it (DESIGN.md: agent/host -> calls -> transport/platform ->
 * core). The pure parts (exit-status table, UsageError) live in core/cli/.
 * Must never: hold command logic; a command's behaviour lives in its own file.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** What a command is given besides its arguments: environment and its two output streams. */
export interface CliContext {
  readonly env: Env;
  out(text: string): void;
  err(text: string): void;
}

export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The full --help text: usage (first paragraph, shown after a usage error), options, examples. */
  readonly help: string;
  /** Commands of their own (`image build`): each keeps its own --help. */
  readonly subcommands?: readonly Command[];
  /**
   * Returns the exit status (core/cli/exit-codes.ts). Throws UsageError for a bad command line,
   * ConfigError for an operator fault. Absent on a command that only groups subcommands.
   * --help never reaches it: the dispatcher answers that.
   */
  run?(args: string[], ctx: CliContext): Promise<number>;
}

/** A whole CLI: its name, what it is, its commands; `qubes-air` and `qubes-air-agent`. */
export interface Program {
  readonly name: string;
  /** One paragraph under the usage line of the overview. */
  readonly about: string;
  readonly commands: readonly Command[];
  /** Example lines for the overview, if any. */
  readonly examples?: readonly string[];
  /** The command that `PROG --version` runs. */
  readonly version?: Command;
}
