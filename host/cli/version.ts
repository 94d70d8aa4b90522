/** `qubes-air version`. */
import { EXIT } from "../../core/cli/exit-codes.ts";
import { TARGET, VERSION } from "../version.ts";
import { type Command, parse, UsageError } from "./common.ts";

export const versionCommand: Command = {
  name: "version",
  summary: "print the version",
  help: `Usage: qubes-air version

Prints the version of this qubes-air host (the agent's version is in qubes-air list).

Examples:
  qubes-air version`,

  async run(args, ctx) {
    const { positionals } = parse(args, {});
    if (positionals.length > 0) throw new UsageError("version takes no arguments");
    ctx.out(`qubes-air ${VERSION} (${TARGET})\n`);
    return EXIT.OK;
  },
};
