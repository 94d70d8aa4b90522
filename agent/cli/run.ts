/** `qubes-air-agent run`: the daemon, until SIGTERM or SIGINT. */
import { EXIT } from "../../core/cli/exit-codes.ts";
import { loadConfig } from "../config.ts";
import { startDaemon } from "../daemon.ts";
import { makeLog } from "../log.ts";
import { CONFIG_OPTION, type Command, configPath, parse } from "./cli.ts";

export const runCommand: Command = {
  name: "run",
  summary: "run the agent daemon",
  help: `Usage: qubes-air-agent run [--config PATH]

Runs the agent: listens for sys-remote on the configured TCP address and/or tty, serves the
calls its policy allows, and takes device-side calls on the local socket. Logs one line per
event on stderr. Stops on SIGTERM or SIGINT.

Options:
  --config PATH   configuration file (default /etc/qubes-air/agent.json; see docs/agent.md)

Examples:
  qubes-air-agent run
  qubes-air-agent run --config ./agent.json`,
  async run(args) {
    const { values } = parse("run", args, CONFIG_OPTION);
    const config = await loadConfig(configPath(values));
    const log = makeLog();
    const daemon = await startDaemon(config, log);
    await new Promise<void>((resolve) => {
      const onSignal = (signal: string) => {
        log("stopping", { signal });
        resolve();
      };
      process.once("SIGTERM", () => onSignal("SIGTERM"));
      process.once("SIGINT", () => onSignal("SIGINT"));
    });
    await daemon.stop();
    return EXIT.OK;
  },
};
