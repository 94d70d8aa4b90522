/**
 * `qubes-air-agent call TARGET SERVICE[+ARG]`: a call from the device into Qubes, like
 * qrexec-client-vm. stdin goes to the service, its stdout and stderr come back, and the exit
 * status is the service's (EXIT.REFUSED 126, EXIT.CALL_PROBLEM 125 when the call could not be made).
 */

import { runCall } from "../../calls/caller.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { UsageError } from "../../core/cli/usage-error.ts";
import { isCallTarget, parseServiceCall } from "../../core/qrexec/names.ts";
import { platform } from "../../platform/index.ts";
import { readableSource, writableSink } from "../../transport/node-stream.ts";
import type { ByteStream } from "../../transport/transport.ts";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config.ts";
import { encodeLocalHeader } from "../link/outgoing-calls.ts";
import { type Command, parse } from "./cli.ts";

const DEFAULT_SOCKET = "/run/qubes-air/agent.sock";

export const callCommand: Command = {
  name: "call",
  summary: "call a qrexec service in Qubes from this device",
  help: `Usage: qubes-air-agent call [--config PATH | --socket PATH] [--] TARGET SERVICE[+ARG]

Calls SERVICE (with argument ARG) in the Qubes qube TARGET through the connected sys-remote,
like qrexec-client-vm. Policy in dom0 decides, with this device's RemoteVM as the source.
stdin is sent to the service; its stdout and stderr are written here; the exit status is the
service's, 126 if the call was refused, 125 if it could not be made (not connected).
TARGET is a qube name, @default, @adminvm, dom0, @dispvm or @dispvm:NAME ($ for @ works too).

Options:
  --config PATH   read the agent's socket path from this configuration file
  --socket PATH   the agent's socket (default: from the config, else ${DEFAULT_SOCKET})

Examples:
  qubes-air-agent call work qubes.Filecopy < stream
  echo hello | qubes-air-agent call -- vault my.Service+arg1`,
  async run(args) {
    const { values, positionals } = parse(
      "call",
      args,
      { config: { type: "string" }, socket: { type: "string" } },
      true,
    );
    if (positionals.length !== 2) throw new UsageError("expected TARGET and SERVICE[+ARG]");
    const target = positionals[0]!.replace(/\$/g, "@");
    if (!isCallTarget(target)) throw new UsageError(`invalid target "${positionals[0]}"`);
    let service: { service: string; arg: string };
    try {
      service = parseServiceCall(positionals[1]!);
    } catch {
      throw new UsageError(
        `invalid service "${positionals[1]}" (SERVICE[+ARG], letters, digits and _.- only)`,
      );
    }
    const socketPath = await socketOf(values);
    let stream: ByteStream;
    try {
      stream = await platform.unixConnect(socketPath);
    } catch {
      process.stderr.write(`qubes-air-agent: the agent is not running (cannot connect to ${socketPath})\n`);
      return EXIT.CALL_PROBLEM;
    }
    try {
      await stream.write(encodeLocalHeader({ target, ...service }));
    } catch {
      stream.close();
      process.stderr.write("qubes-air-agent: the agent closed the connection\n");
      return EXIT.CALL_PROBLEM;
    }
    const stdout = writableSink(process.stdout, "stdout");
    const stderr = writableSink(process.stderr, "stderr");
    const stdin = readableSource(process.stdin, "stdin");
    return (await runCall(stream, { stdin, stdout, stderr }, { closeStdoutAtEof: true })).status;
  },
};

async function socketOf(values: Record<string, unknown>): Promise<string> {
  if (typeof values.socket === "string") return values.socket;
  if (typeof values.config === "string") return (await loadConfig(values.config)).socket;
  if (await platform.stat(DEFAULT_CONFIG_PATH)) return (await loadConfig(DEFAULT_CONFIG_PATH)).socket;
  return DEFAULT_SOCKET;
}
