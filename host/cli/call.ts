/** `qubes-air call`: a qrexec call to a remote qube from sys-remote, like qrexec-client-vm. */

import { runCall } from "../../calls/caller.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { parseServiceCall } from "../../core/qrexec/names.ts";
import { DaemonUnreachable, openDaemonCall } from "./client.ts";
import { COMMON_HELP, type Command, localQubeName, parse, pathsOf, qubeArg, UsageError } from "./common.ts";
import { fdSink, fdSource } from "./stdio.ts";

export const callCommand: Command = {
  name: "call",
  summary: "call a service on a remote qube (stdin, stdout, stderr and exit code pass through)",
  help: `Usage: qubes-air call [--source NAME] QUBE SERVICE[+ARG]

Runs SERVICE on the remote qube QUBE over its link, as qrexec-client-vm would: stdin goes
to the service, its stdout and stderr come back, and the exit code is the service's. 126
means refused (the device's own policy; "Request refused" is printed), 127 no such service,
125 a problem with the link or the daemon. The device sees the call as coming from NAME
(default: this qube's name).

Options:
  --source NAME   the caller's name the device sees (default: this qube)
${COMMON_HELP}

Examples:
  echo hello | qubes-air call pi-gpg qubes.Echo
  qubes-air call pi-gpg qubes.GetDate </dev/null`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, { source: { type: "string" } });
    if (positionals.length !== 2) throw new UsageError("give QUBE and SERVICE[+ARG]");
    const remote = qubeArg(positionals[0], "QUBE");
    let service: ReturnType<typeof parseServiceCall>;
    try {
      service = parseServiceCall(positionals[1]!);
    } catch {
      throw new UsageError("SERVICE must be a qrexec service name (letters, digits, _ . -), optionally +ARG");
    }
    const source =
      values.source === undefined ? localQubeName() : qubeArg(values.source as string, "--source");
    const stderr = fdSink(2, "stderr", false);
    let channel: Awaited<ReturnType<typeof openDaemonCall>>;
    try {
      channel = await openDaemonCall(pathsOf(ctx, values).socket, { remote, source, ...service });
    } catch (e) {
      if (!(e instanceof DaemonUnreachable)) throw e;
      ctx.err(`qubes-air: ${e.message}\n`);
      return EXIT.CALL_PROBLEM;
    }
    const result = await runCall(
      channel,
      { stdin: fdSource(0, "stdin"), stdout: fdSink(1, "stdout", true), stderr },
      { closeStdoutAtEof: true },
    );
    if (result.broken) ctx.err(`qubes-air: the link to ${remote} broke before the call finished\n`);
    return result.status;
  },
};
