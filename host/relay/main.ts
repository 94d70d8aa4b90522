/**
 * Entry point of the relay service (host/relay.ts), installed in sys-remote as the executables
 * /etc/qubes-rpc/qubesair.NoiseProxy and /etc/qubes-rpc/qubesair.Call (compiled:
 * `bun build --compile host/relay/main.ts`; docs/host.md "Install"). Exits with the remote's
 * status. qrexec starts it once per call, so it uses only Bun-native I/O
 * (host/relay/bun-io.ts) and no node:fs/net/child_process: start-up is call latency.
 * The daemon socket is found by the daemon's own rule (host/socket-path.ts).
 */
import { basename } from "node:path";
import { socketCandidatesOf, stateDirOf } from "../socket-path.ts";
import { bunFdSink, bunRunCommand, bunStdin, bunUnixConnectFirst } from "./bun-io.ts";
import { runRelay } from "./relay.ts";

const sockets = socketCandidatesOf(process.env, stateDirOf(process.env));

// No top-level await: the relay is compiled with --bytecode (faster start), which needs a CJS-style entry.
async function main(): Promise<void> {
  const status = await runRelay(
    {
      args: process.argv.slice(2),
      env: process.env,
      invokedAs: basename(process.argv0 ?? ""),
      socket: sockets.join(" or "),
      connect: () => bunUnixConnectFirst(sockets),
      async qubesdbRead(key) {
        const r = await bunRunCommand(["qubesdb-read", key], 256);
        const value = r.stdout.replace(/\n$/, "");
        return r.code === 0 && value !== "" ? value : null;
      },
    },
    { stdin: bunStdin(), stdout: bunFdSink(1, true), stderr: bunFdSink(2, false) },
  );
  process.exit(status);
}

void main();
