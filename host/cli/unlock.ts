/**
 * `qubes-air unlock NAME` in sys-remote (docs/key-lock.md "Unlocking"): asks for the PIN of the
 * device's sealed key (on the terminal without echo, or the first line of stdin for scripts) and
 * sends it with qubesair.Unlock through the daemon, so it crosses only the encrypted link. Says
 * what the device answered: unlocked, wrong PIN with the attempts left, or wiped.
 * Must never: echo the PIN, put it on the command line or in the environment (other processes
 * can read those), or print device text raw to a terminal.
 */
import { runCall } from "../../calls/caller.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { ProtocolError } from "../../core/errors.ts";
import { parsePin } from "../../core/keylock/pin.ts";
import { EXIT_PROBLEM, EXIT_REFUSED } from "../../core/qrexec/call-protocol.ts";
import { Service } from "../../core/qrexec/services.ts";
import { readSecretLine, SecretInputAborted } from "../../platform/cli/secret-line.ts";
import { DaemonUnreachable, openDaemonCall } from "./client.ts";
import { COMMON_HELP, type Command, localQubeName, parse, pathsOf, qubeArg, UsageError } from "./common.ts";
import { escapeText } from "./logs.ts";

export const unlockCommand: Command = {
  name: "unlock",
  summary: "unlock a device's PIN-protected key (the PIN crosses only the encrypted link)",
  help: `Usage: qubes-air unlock [--source NAME] QUBE

Asks for the PIN of the key on the remote qube QUBE (set on the device with
\`qubes-air-agent gpg-setup --pin\`) and sends it to the device over the encrypted link
(qubesair.Unlock). On a terminal the PIN is read without echo; otherwise the first line of
stdin is the PIN (for scripts). Until it is unlocked, the device refuses every signature
and decryption; it locks again after its idle time, when it is unplugged, and when it stops.

Every wrong PIN counts on the device: after its keyLock.maxAttempts (default 5) wrong PINs in
a row the key is wiped. Whoever controls this qube sees the PIN as it is typed here.

Options:
  --source NAME    the caller's name the device sees (default: this qube)
${COMMON_HELP}

Exit status: 0 unlocked (or already unlocked), 1 wrong PIN, wiped, or no PIN-protected key,
2 the PIN given is not a valid PIN, 125 link or daemon problem, 126 refused by the device's
policy (its shipped default allows qubesair.Unlock from "sys-remote" only).

Examples:
  qubes-air unlock pi-gpg
  pass show pi-gpg-pin | qubes-air unlock pi-gpg`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, { source: { type: "string" } });
    if (positionals.length !== 1) throw new UsageError("give exactly one QUBE");
    const remote = qubeArg(positionals[0], "QUBE");
    const source =
      values.source === undefined ? localQubeName() : qubeArg(values.source as string, "--source");
    const paths = pathsOf(ctx, values);
    let pinText: string;
    try {
      pinText = await readSecretLine(`PIN for ${remote}: `);
    } catch (e) {
      if (!(e instanceof SecretInputAborted)) throw e;
      ctx.err("qubes-air unlock: no PIN given; nothing was sent\n");
      return EXIT.FAILURE;
    }
    let pin: Uint8Array;
    try {
      pin = new TextEncoder().encode(parsePin(new TextEncoder().encode(pinText)));
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      throw new UsageError("a PIN is 4 to 128 characters without control characters; nothing was sent");
    }

    let channel: Awaited<ReturnType<typeof openDaemonCall>>;
    try {
      channel = await openDaemonCall(paths.socket, { remote, source, service: Service.Unlock, arg: "" });
    } catch (e) {
      if (!(e instanceof DaemonUnreachable)) throw e;
      ctx.err(`qubes-air: ${e.message}\n`);
      return EXIT_PROBLEM;
    }
    let said = "";
    let sent = false;
    const keep = async (d: Uint8Array) => {
      if (said.length < 4096) said += new TextDecoder().decode(d);
    };
    const result = await runCall(
      channel,
      {
        stdin: {
          read: async () => {
            if (sent) return null;
            sent = true;
            return pin;
          },
        },
        stdout: { write: keep },
        stderr: { write: keep },
      },
      { refusedMessage: false },
    );
    pin.fill(0);
    const answer = escapeText(said.trim().slice(0, 400));
    if (result.broken) {
      ctx.err(`qubes-air: the link to ${remote} broke during the unlock; run it again to see the state\n`);
      return EXIT_PROBLEM;
    }
    if (result.status === EXIT_REFUSED) {
      ctx.err(
        `qubes-air unlock: ${remote} refused ${Service.Unlock} from "${source}"; its policy allows it from ` +
          `the service qube only (the default: "sys-remote"), e.g.\n  ${Service.Unlock}  *  ${source}  @anyvm  allow\n`,
      );
      return EXIT_REFUSED;
    }
    if (result.status !== 0) {
      ctx.err(`qubes-air unlock: ${remote}: ${answer || `failed (exit ${result.status})`}\n`);
      return EXIT.FAILURE;
    }
    ctx.out(`${remote}: ${answer || "unlocked"}\n`);
    return EXIT.OK;
  },
};
