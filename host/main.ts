/**
 * `qubes-air`: the sys-remote CLI (docs/host.md). One file per command in host/cli/;
 * every command has --help with examples. Exit codes: 0 ok, 1 failure, 2 usage error, and for
 * `call` the remote's own status (125 link/daemon problem, 126 refused, 127 no such service);
 * `flash` has the flasher's own codes (images/flash.ts).
 */
import { writeSync } from "node:fs";
import { ConfigError } from "../core/errors.ts";
import { callCommand } from "./cli/call.ts";
import type { CliContext, Command } from "./cli/common.ts";
import { UsageError } from "./cli/common.ts";
import { copyFromCommand } from "./cli/copy-from.ts";
import { copyToCommand } from "./cli/copy-to.ts";
import { daemonCommand } from "./cli/daemon.ts";
import { flashCommand } from "./cli/flash.ts";
import { imageCommand } from "./cli/image.ts";
import { listCommand } from "./cli/list.ts";
import { logsCommand } from "./cli/logs.ts";
import { pairCommand } from "./cli/pair.ts";
import { unpairCommand } from "./cli/unpair.ts";
import { versionCommand } from "./cli/version.ts";

const COMMANDS: readonly Command[] = [
  daemonCommand,
  pairCommand,
  unpairCommand,
  listCommand,
  callCommand,
  copyToCommand,
  copyFromCommand,
  logsCommand,
  imageCommand,
  flashCommand,
  versionCommand,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: qubes-air COMMAND [options]   (qubes-air COMMAND --help for details)

Remote qubes for Qubes OS: devices and cloud VMs as qubes, reached from sys-remote.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}
`;
}

export async function main(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    (name === undefined ? ctx.err : ctx.out)(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version") return versionCommand.run([], ctx);
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    ctx.err(`qubes-air: unknown command "${name.slice(0, 40)}"\n\n${usage()}`);
    return 2;
  }
  const ownHelp = rest[0] !== undefined && command.subcommands?.includes(rest[0]);
  if (!ownHelp && (rest.includes("--help") || rest.includes("-h"))) {
    ctx.out(`${command.help}\n`);
    return 0;
  }
  try {
    return await command.run(rest, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      ctx.err(`qubes-air ${command.name}: ${e.message}\n\n${command.help.split("\n\n")[0]}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      ctx.err(`qubes-air ${command.name}: ${e.message}\n`);
      return e.exitCode === 2 ? 1 : e.exitCode;
    }
    ctx.err(`qubes-air ${command.name}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** Small synchronous writes (help, tables, messages), so nothing is lost at process.exit. */
export function writeAllSync(fd: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length; ) {
    try {
      off += writeSync(fd, bytes, off);
    } catch (e) {
      if ((e as { code?: string }).code !== "EAGAIN") return; // the reader is gone: nothing to tell
    }
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2), {
    env: process.env,
    out: (t) => writeAllSync(1, t),
    err: (t) => writeAllSync(2, t),
  });
  // A finished command must not wait for leftover handles (a pending stdin read, timers).
  process.exit(code);
}
