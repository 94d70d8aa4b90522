/** `qubes-air-agent pair-token`: opens pair-psk pairing with a fresh one-time token. */
import { EXIT } from "../../core/cli/exit-codes.ts";
import { loadConfig } from "../config.ts";
import { AgentState } from "../link/state.ts";
import { CONFIG_OPTION, type Command, configPath, parse } from "./cli.ts";

export const pairTokenCommand: Command = {
  name: "pair-token",
  summary: "create a one-time pairing token",
  help: `Usage: qubes-air-agent pair-token [--config PATH]

Writes a fresh one-time pairing token (32 random bytes) to pairing-token in the configured
stateDir, replacing any earlier one, and prints it as 64 hex digits. Give it to sys-remote's
pairing command. While the file exists the running agent accepts one token pairing (pair-psk);
it deletes the file right after that pairing succeeds. For setups without the image builder,
which writes the token into the image.

Options:
  --config PATH   configuration file (default /etc/qubes-air/agent.json)

Examples:
  qubes-air-agent pair-token
  TOKEN=$(qubes-air-agent pair-token --config ./agent.json)`,
  async run(args, ctx) {
    const { values } = parse("pair-token", args, CONFIG_OPTION);
    const config = await loadConfig(configPath(values));
    const token = await AgentState.writeToken(config.stateDir);
    ctx.err(`qubes-air-agent: one-time pairing token written to ${config.stateDir}/pairing-token\n`);
    ctx.out(`${token}\n`);
    return EXIT.OK;
  },
};
