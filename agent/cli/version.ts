/** `qubes-air-agent version` (also `--version`). */
import { EXIT } from "../../core/cli/exit-codes.ts";
import { TARGET, VERSION } from "../version.ts";
import { type Command, parse } from "./cli.ts";

export const versionCommand: Command = {
  name: "version",
  summary: "print the version",
  help: `Usage: qubes-air-agent version   (or: qubes-air-agent --version)

Prints the agent's version.

Example:
  qubes-air-agent --version`,
  async run(args, ctx) {
    parse("version", args, {});
    ctx.out(`qubes-air-agent ${VERSION} (${TARGET})\n`);
    return EXIT.OK;
  },
};
