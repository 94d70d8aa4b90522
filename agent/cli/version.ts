/** `qubes-air-agent version` (also `--version`). */
import { TARGET, VERSION } from "../version.ts";
import { type Command, parse, print } from "./cli.ts";

export const versionCommand: Command = {
  name: "version",
  summary: "print the version",
  help: `Usage: qubes-air-agent version   (or: qubes-air-agent --version)

Prints the agent's version.

Example:
  qubes-air-agent --version`,
  async run(args) {
    const { help } = parse("version", args, {});
    print(help ? this.help : `qubes-air-agent ${VERSION} (${TARGET})`);
    return 0;
  },
};
