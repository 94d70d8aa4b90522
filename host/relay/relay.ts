/**
 * The RemoteVM relay: the executable qrexec service `/etc/qubes-rpc/qubesair.NoiseProxy` in
 * sys-remote (Qubes 4.3 transport_rpc; qubes-remote-qrexec.md §1.3), and `qubesair.Call` for
 * Qubes 4.2, which has no RemoteVM. qrexec runs it as:
 *
 *   argv[1] = QREXEC_SERVICE_ARGUMENT = <RemoteVM>+<service>+<arg>   (trailing "+" = empty arg)
 *   QREXEC_REMOTE_DOMAIN = the calling qube; stdin/stdout = the caller's streams;
 *   our exit status = the caller's (so this is an executable service, never a socket service).
 *
 * The argument splits at the first "+" into the RemoteVM and the rest, and the rest at its first
 * "+" into service and argument. NoiseProxy maps the RemoteVM to its remote name with
 * `qubesdb-read /remote/<RemoteVM>` (dom0 writes it); no entry = refused. qubesair.Call uses
 * that entry when present, else the name as given. Names starting with "@" and anything qrexec
 * would not accept as a name are refused (126) before the daemon is asked. Then the call is
 * streamed through the daemon socket; a daemon that cannot be reached is 125. Beside the call,
 * the device's prompts for it go to stderr, i.e. the caller's stderr (prompt-watch.ts).
 * Must never: read all of stdin before calling, print a name that failed validation, or exit
 * with a status the remote did not send (except 125/126 for our own failures, with a message).
 */

import { runCall } from "../../calls/caller.ts";
import { ConfigError } from "../../core/errors.ts";
import { EXIT_PROBLEM, EXIT_REFUSED } from "../../core/qrexec/call-protocol.ts";
import { isArgument, isQubeName, isServiceName } from "../../core/qrexec/names.ts";
import { Service } from "../../core/qrexec/services.ts";
import type { ByteSink, ByteSource, ByteStream } from "../../transport/transport.ts";
import { type CallTarget, openDaemonCall } from "../daemon-call.ts";
import type { Env } from "../paths.ts";
import { watchPrompts } from "./prompt-watch.ts";

export interface RelayIo {
  readonly stdin: ByteSource;
  readonly stdout: ByteSink;
  readonly stderr: ByteSink;
}

export interface RelayContext {
  readonly args: readonly string[];
  readonly env: Env;
  /** How we were invoked when QREXEC_SERVICE_FULL_NAME is absent (basename of argv[0]). */
  readonly invokedAs: string;
  readonly socket: string;
  /** Connects to the daemon's socket (Bun-native in the relay binary: host/relay/bun-io.ts). */
  readonly connect: (socket: string) => Promise<ByteStream>;
  /** `qubesdb-read KEY`: the value, or null when it fails or is empty. */
  readonly qubesdbRead: (key: string) => Promise<string | null>;
}

type Plan = { readonly call: CallTarget } | { readonly refuse: string };

/** `<RemoteVM>+<service>+<arg>` -> parts; null when the service part is missing. */
export function splitRelayArgument(text: string): { target: string; service: string; arg: string } | null {
  const first = text.indexOf("+");
  if (first < 0) return null;
  const target = text.slice(0, first);
  const rest = text.slice(first + 1);
  const second = rest.indexOf("+");
  const service = second < 0 ? rest : rest.slice(0, second);
  const arg = second < 0 ? "" : rest.slice(second + 1);
  if (service === "") return null;
  return { target, service, arg };
}

export async function planRelay(ctx: RelayContext): Promise<Plan> {
  const fromEnv = ctx.env.QREXEC_SERVICE_ARGUMENT;
  const fromArgv = ctx.args[0];
  if (fromArgv !== undefined && fromEnv !== undefined && fromArgv !== fromEnv) {
    return { refuse: "argv[1] and QREXEC_SERVICE_ARGUMENT differ" };
  }
  const text = fromArgv ?? fromEnv;
  if (text === undefined) return { refuse: "no service argument (expected <RemoteVM>+<service>+<arg>)" };
  const parts = splitRelayArgument(text);
  if (parts === null) return { refuse: "no service in the argument (expected <RemoteVM>+<service>+<arg>)" };
  const { target, service, arg } = parts;
  if (target.startsWith("@")) return { refuse: "a keyword (@...) is not a remote qube" };
  if (!isQubeName(target)) return { refuse: "invalid remote qube name" };
  if (!isServiceName(service) || !isArgument(arg)) return { refuse: "invalid service name" };
  const source = ctx.env.QREXEC_REMOTE_DOMAIN;
  if (source === undefined || !isQubeName(source)) return { refuse: "no valid QREXEC_REMOTE_DOMAIN" };
  const serviceName = (ctx.env.QREXEC_SERVICE_FULL_NAME ?? ctx.invokedAs).split("+")[0];
  const mapped = await ctx.qubesdbRead(`/remote/${target}`);
  let remote: string;
  if (mapped !== null) remote = mapped;
  else if (serviceName === Service.Call) remote = target;
  else
    return {
      refuse: `${target} is not a remote qube relayed by this qube (no /remote/${target} in QubesDB)`,
    };
  if (remote.startsWith("@") || !isQubeName(remote)) return { refuse: `invalid remote name for ${target}` };
  return { call: { remote, source, service, arg } };
}

export async function runRelay(ctx: RelayContext, io: RelayIo): Promise<number> {
  const say = (m: string) =>
    io.stderr.write(new TextEncoder().encode(`qubes-air relay: ${m}\n`)).catch(() => {});
  const plan = await planRelay(ctx);
  if ("refuse" in plan) {
    await say(`refused: ${plan.refuse}`);
    return EXIT_REFUSED;
  }
  let channel: Awaited<ReturnType<typeof openDaemonCall>>;
  try {
    channel = await openDaemonCall(ctx.connect, ctx.socket, plan.call);
  } catch (e) {
    await say(e instanceof ConfigError ? e.message : "cannot reach the daemon");
    return EXIT_PROBLEM;
  }
  // The watch connects once the call is on its way (it never competes with the call for the
  // daemon's accept queue); a prompt that was announced before it started is replayed to it.
  const watch = watchPrompts(() => ctx.connect(ctx.socket), plan.call, io.stderr);
  const result = await runCall(channel, io, { refusedMessage: false, closeStdoutAtEof: true });
  await (await watch).finish();
  if (result.broken) await say(`the link to ${plan.call.remote} broke before the call finished`);
  return result.status;
}
