/** `qubes-air copy-to`: qvm-copy to a remote qube (qubes.Filecopy over its link). */

import { type PackResult, packQfile, scanTree } from "../../calls/qfile-pack.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { Service } from "../../core/qrexec/services.ts";
import { DaemonUnreachable } from "./client.ts";
import { COMMON_HELP, type Command, localQubeName, parse, pathsOf, qubeArg, UsageError } from "./common.ts";
import {
  brokenCopyLine,
  copyErrorLine,
  kib,
  openFileCall,
  PROGRESS_MIN_BYTES,
  withSignals,
} from "./copy-common.ts";

export const copyToCommand: Command = {
  name: "copy-to",
  summary: "copy files to a remote qube (like qvm-copy-to-vm)",
  help: `Usage: qubes-air copy-to [--without-progress] [--ignore-symlinks] QUBE FILE...

Sends FILEs (directories recursively, symlinks as links) to QUBE with qubes.Filecopy. They
arrive in ~/QubesIncoming/<this qube>/ on the device, as with qvm-copy. Progress is shown as
"sent X/Y KiB" on stderr for long copies. Exit 0 on success, the receiver's status otherwise,
126 if the device refused the call, 125 if the link or the daemon went away, 130 after Ctrl-C
(the device removes what it had half-received).

Options:
  --without-progress   no progress line
  --ignore-symlinks    leave symbolic links out
${COMMON_HELP}

Examples:
  qubes-air copy-to pi-gpg backup.tar.gpg
  qubes-air copy-to build1 --ignore-symlinks src/`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, {
      "without-progress": { type: "boolean" },
      "ignore-symlinks": { type: "boolean" },
    });
    if (positionals.length < 2) throw new UsageError("give QUBE and at least one FILE");
    const remote = qubeArg(positionals[0], "QUBE");
    const files = positionals.slice(1);
    const ignoreSymlinks = values["ignore-symlinks"] === true;
    const scan = await scanTree(files, { ignoreSymlinks });
    const showProgress = values["without-progress"] !== true && scan.totalBytes >= PROGRESS_MIN_BYTES;
    let call: Awaited<ReturnType<typeof openFileCall>>;
    try {
      call = await openFileCall(pathsOf(ctx, values).socket, {
        remote,
        source: localQubeName(),
        service: Service.Filecopy,
        arg: scan.namesSafe ? "" : "allow-all-names",
      });
    } catch (e) {
      if (!(e instanceof DaemonUnreachable)) throw e;
      ctx.err(`qubes-air: ${e.message}\n`);
      return EXIT.CALL_PROBLEM;
    }
    let packed: PackResult | null = null;
    let failure: unknown = null;
    // Ctrl-C or SIGTERM: the packer stops and the device sees its input end, so its receiver
    // removes the file it had half-received.
    let interrupted: NodeJS.Signals | null = null;
    try {
      const run = await withSignals(call.abort, () =>
        packQfile(files, call.stdin, call.stdout, {
          total: scan.totalBytes,
          ignoreSymlinks,
          onProgress: showProgress
            ? (sent, total) => ctx.err(`\rsent ${kib(sent)}/${kib(total)} KiB`)
            : undefined,
        }).catch((e: unknown) => {
          failure = e;
          return null;
        }),
      );
      packed = run.value;
      interrupted = run.signal;
    } finally {
      call.finishReading();
      await call.stdin.closeWrite().catch(() => {});
    }
    if (showProgress) ctx.err("\n");
    if (interrupted !== null) {
      ctx.err(`qubes-air: copy-to stopped by ${interrupted}; the device removes what it had half-received\n`);
      return EXIT.INTERRUPTED;
    }
    const result = await call.result;
    if (result.broken) {
      // Whatever the packer threw meanwhile is a consequence of the break: one line, no trace.
      ctx.err(brokenCopyLine("to", remote));
      return EXIT.CALL_PROBLEM;
    }
    // A local fault (a file unreadable or shrinking) or no reply: the dispatcher says it in words.
    if (failure !== null) throw failure;
    if (packed !== null && packed.code !== 0) {
      ctx.err(copyErrorLine(packed.code, new TextEncoder().encode(packed.lastName)));
      return result.status !== EXIT.OK ? result.status : EXIT.FAILURE;
    }
    return result.status;
  },
};
