/** `qubes-air unpair`: forgets a remote qube (its pinned key and its link). */

import { EXIT } from "../../core/cli/exit-codes.ts";
import { loadRegistry, saveRegistry } from "../daemon/registry.ts";
import { removeRemoteVm } from "../register-remote.ts";
import { DaemonUnreachable, request } from "./client.ts";
import { COMMON_HELP, type Command, parse, pathsOf, qubeArg, UsageError } from "./common.ts";

export const unpairCommand: Command = {
  name: "unpair",
  summary: "forget a remote qube",
  help: `Usage: qubes-air unpair NAME [--remove-qube]

Closes the link to NAME and removes it (and its pinned agent key) from the registry. To use
the device again, pair it again (with a new token, or --code). Works without the daemon too.

Options:
  --remove-qube   also remove the RemoteVM NAME in dom0 (dom0's qubesair.RegisterRemote
                  removes only RemoteVMs this qube registered and relays). If dom0 refuses,
                  nothing is unpaired.
${COMMON_HELP}

Examples:
  qubes-air unpair pi-gpg
  qubes-air unpair pi-gpg --remove-qube`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, { "remove-qube": { type: "boolean" } });
    const removeQube = values["remove-qube"] === true;
    if (positionals.length !== 1) throw new UsageError("give exactly one NAME");
    const name = qubeArg(positionals[0], "NAME");
    const paths = pathsOf(ctx, values);
    try {
      await request(paths.socket, { op: "unpair", name, ...(removeQube ? { removeQube } : {}) });
    } catch (e) {
      if (!(e instanceof DaemonUnreachable)) throw e;
      // No daemon: nothing else writes the registry, so edit it here.
      const registry = await loadRegistry(paths.registry);
      const remotes = registry.remotes.filter((r) => r.name !== name);
      if (remotes.length === registry.remotes.length) {
        ctx.err(`qubes-air: no remote qube named ${name} is paired\n`);
        return EXIT.FAILURE;
      }
      if (removeQube) await removeRemoteVm(name);
      await saveRegistry(paths.registry, { remotes });
    }
    ctx.out(`Unpaired ${name}${removeQube ? "; its RemoteVM is removed in dom0" : ""}\n`);
    return EXIT.OK;
  },
};
