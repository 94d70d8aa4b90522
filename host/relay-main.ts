/**
 * Entry point of the relay service (host/relay.ts), installed in sys-remote as the executables
 * /etc/qubes-rpc/qubesair.NoiseProxy and /etc/qubes-rpc/qubesair.Call (compiled:
 * `bun build --compile host/relay-main.ts`; docs/host.md "Install"). Exits with the remote's
 * status. The daemon socket follows host/paths.ts (QUBES_AIR_SOCKET overrides it).
 */
import { basename } from "node:path";
import { bunRunCommand, bunUnixConnect } from "../platform/bun-relay-io.ts";
import { hostPaths } from "./paths.ts";
import { runRelay } from "./relay.ts";
import { fdSink, fdSource } from "./stdio.ts";

const status = await runRelay(
  {
    args: process.argv.slice(2),
    env: process.env,
    invokedAs: basename(process.argv0 ?? ""),
    socket: hostPaths(process.env).socket,
    connect: bunUnixConnect,
    async qubesdbRead(key) {
      const r = await bunRunCommand(["qubesdb-read", key], 256);
      const value = r.stdout.replace(/\n$/, "");
      return r.code === 0 && value !== "" ? value : null;
    },
  },
  {
    stdin: fdSource(0, "stdin"),
    stdout: fdSink(1, "stdout", true),
    stderr: fdSink(2, "stderr", false),
  },
);
process.exit(status);
