/** `qubes-air daemon`: runs the sys-remote daemon in the foreground (systemd user unit). */
import { EXIT } from "../../core/cli/exit-codes.ts";
import { Daemon } from "../daemon/daemon.ts";
import { DEFAULT_NET_DIR, HOTPLUG_INTERVAL_MS } from "../daemon/hotplug.ts";
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS } from "../daemon/remote-link.ts";
import { DEFAULT_BY_ID_DIR } from "../daemon/transport-open.ts";
import { DEFAULT_QREXEC_CLIENT } from "../register-remote.ts";
import {
  COMMON_HELP,
  type Command,
  integerOption,
  localQubeName,
  parse,
  pathsOf,
  qubeArg,
  UsageError,
} from "./common.ts";

const OPTIONS = {
  "serial-by-id-dir": { type: "string" },
  "net-dir": { type: "string" },
  "qrexec-client": { type: "string" },
  "keepalive-ms": { type: "string" },
  "backoff-min-ms": { type: "string" },
  "backoff-max-ms": { type: "string" },
  "hotplug-interval-ms": { type: "string" },
  "no-register": { type: "boolean" },
  "self-name": { type: "string" },
} as const;

export const daemonCommand: Command = {
  name: "daemon",
  summary: "run the daemon that keeps the links to the remote qubes (foreground)",
  help: `Usage: qubes-air daemon [options]

Keeps one encrypted link per paired remote qube, reconnects by itself, notices USB devices
and network interfaces as they come and go, serves the relay (qubesair.NoiseProxy) and this
CLI on a unix socket (mode 0600), and runs calls from devices into Qubes through
qrexec-client-vm --source-qube=<remote>. Logs go to stderr (the journal under systemd).

Options:
  --serial-by-id-dir DIR    where USB serial devices appear (default ${DEFAULT_BY_ID_DIR})
  --net-dir DIR             network interfaces (default ${DEFAULT_NET_DIR})
  --qrexec-client PROGRAM   for calls from devices and registration in dom0 (default ${DEFAULT_QREXEC_CLIENT})
  --keepalive-ms N          RTT ping period (default 10000)
  --backoff-min-ms N        first reconnect delay (default ${BACKOFF_MIN_MS})
  --backoff-max-ms N        longest reconnect delay (default ${BACKOFF_MAX_MS})
  --hotplug-interval-ms N   how often devices are looked for (default ${HOTPLUG_INTERVAL_MS}, at most 500)
  --no-register             do not register the RemoteVM in dom0 after a pairing (Salt pillar or by hand)
  --self-name NAME          this qube's name in dom0, the RemoteVMs' relayvm (default: the host name)

After each pairing (by hand, or of a pending enrolment from "qubes-air image build"), the daemon
registers the remote's RemoteVM in dom0 through the dom0 package's qubesair.RegisterRemote
service (allowed for sys-remote by 45-qubes-air-register.policy): dom0 makes this qube its
relayvm and qubesair.NoiseProxy its transport; nothing else (docs/enrolment.md).
${COMMON_HELP}

Examples:
  systemctl --user enable --now qubes-air     # the usual way (docs/host.md)
  qubes-air daemon                            # in a terminal, to watch the log`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, OPTIONS);
    if (positionals.length > 0) throw new UsageError("daemon takes no arguments");
    const minMs = integerOption(values["backoff-min-ms"], "backoff-min-ms", 10, 3_600_000) ?? BACKOFF_MIN_MS;
    const maxMs =
      integerOption(values["backoff-max-ms"], "backoff-max-ms", minMs, 3_600_000) ??
      Math.max(minMs, BACKOFF_MAX_MS);
    const daemon = new Daemon({
      paths: pathsOf(ctx, values),
      byIdDir: (values["serial-by-id-dir"] as string | undefined) ?? DEFAULT_BY_ID_DIR,
      netDir: (values["net-dir"] as string | undefined) ?? DEFAULT_NET_DIR,
      qrexecClient: (values["qrexec-client"] as string | undefined) ?? DEFAULT_QREXEC_CLIENT,
      keepaliveMs: integerOption(values["keepalive-ms"], "keepalive-ms", 100, 600_000) ?? 10_000,
      backoff: { minMs, maxMs },
      hotplugIntervalMs:
        integerOption(values["hotplug-interval-ms"], "hotplug-interval-ms", 10, 500) ?? HOTPLUG_INTERVAL_MS,
      register: values["no-register"] !== true,
      selfName:
        values["self-name"] === undefined
          ? localQubeName()
          : qubeArg(values["self-name"] as string, "--self-name"),
      log: (m) => ctx.err(`qubes-air: ${m}\n`),
    });
    await daemon.start();
    const signal = await new Promise<string>((resolve) => {
      process.once("SIGTERM", () => resolve("SIGTERM"));
      process.once("SIGINT", () => resolve("SIGINT"));
    });
    ctx.err(`qubes-air: ${signal}: stopping\n`);
    await daemon.stop();
    return EXIT.OK;
  },
};
