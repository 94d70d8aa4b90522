/**
 * qubes-air-agent: the device runtime (docs/agent.md). One command per file in commands/.
 * Exit status: 0 ok, 2 usage or configuration (ConfigError), 1 any other failure; `call`
 * returns the remote service's status.
 * Runs under Bun and as a Node 18/20 bundle: nothing here touches `Bun.*`.
 */
import "../platform/webcrypto-global.ts"; // first: Node 18 lacks a global crypto for @noble
import { ConfigError } from "../core/errors.ts";
import { callCommand } from "./cli/call.ts";
import type { Command } from "./cli/cli.ts";
import { keygenCommand } from "./cli/keygen.ts";
import { pairTokenCommand } from "./cli/pair-token.ts";
import { runCommand } from "./cli/run.ts";
import { versionCommand } from "./cli/version.ts";
import { gpgSetupCommand } from "./services/gpg/keysetup.ts";

const COMMANDS: readonly Command[] = [
  runCommand,
  keygenCommand,
  pairTokenCommand,
  callCommand,
  gpgSetupCommand,
  versionCommand,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: qubes-air-agent COMMAND [OPTIONS]

The qubes-air device agent: makes this machine a qube for Qubes OS through sys-remote.

Commands:
${lines.join("\n")}

Run "qubes-air-agent COMMAND --help" for a command's options and examples.
Examples:
  qubes-air-agent run --config /etc/qubes-air/agent.json
  qubes-air-agent call work my.Service
  qubes-air-agent gpg-setup --generate "Jane Doe <jane@example.org>" --export /media/usb/jane.asc
`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(overview());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(overview());
    return 0;
  }
  const command = name === "--version" ? versionCommand : COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`qubes-air-agent: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`qubes-air-agent: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(
      `qubes-air-agent: error: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  }
}

const status = await main(process.argv.slice(2));
// Flush stdout/stderr before exiting; pipes may still hold the last lines.
await Promise.all([
  new Promise<void>((r) => process.stdout.write("", () => r())),
  new Promise<void>((r) => process.stderr.write("", () => r())),
]);
process.exit(status);
