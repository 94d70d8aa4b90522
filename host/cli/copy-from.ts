/** `qubes-air copy-from`: fetches files from a remote qube (qubesair.CopyFrom over its link). */
import { homedir } from "node:os";
import { join } from "node:path";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { EREMOTEIO, LEGAL_EOF } from "../../core/qrexec/qfile.ts";
import { COPY_FROM_REQUEST_MAX_BYTES, Service } from "../../core/qrexec/services.ts";
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
import { removeOrphanedParts } from "./stale-parts.ts";

export const copyFromCommand: Command = {
  name: "copy-from",
  summary: "copy files from a remote qube into ~/QubesIncoming/<qube>/",
  help: `Usage: qubes-air copy-from [--to DIR] QUBE PATH...

Asks QUBE for PATHs inside the device's export directory (exportDir, default ~/QubesOutgoing;
relative PATHs start there) with qubesair.CopyFrom and unpacks them with the qfile-unpacker rules (no absolute names, no "..", no unsafe links,
nothing overwritten, no half-written files) into DIR, by default ~/QubesIncoming/QUBE/. If the
copy breaks off (exit 125) or is interrupted (130), the files complete by then stay and nothing
half-written is left; the temporary file of a copy-from that was killed outright is removed by
the next copy-from into the same DIR.

Options:
  --to DIR   where the files go (created with mode 0700)
${COMMON_HELP}

Examples:
  qubes-air copy-from pi-gpg report.pdf
  qubes-air copy-from build1 --to ~/builds out/image.img`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, { to: { type: "string" } });
    if (positionals.length < 2) throw new UsageError("give QUBE and at least one PATH");
    const remote = qubeArg(positionals[0], "QUBE");
    const paths = positionals.slice(1);
    if (paths.some((p) => p === "" || p.includes("\0")))
      throw new UsageError("a PATH is empty or holds a NUL byte");
    const list = new TextEncoder().encode(paths.join("\0"));
    if (list.length > COPY_FROM_REQUEST_MAX_BYTES)
      throw new UsageError(`the PATHs are over ${COPY_FROM_REQUEST_MAX_BYTES} bytes together`);
    const dir = (values.to as string | undefined) ?? join(ctx.env.HOME || homedir(), "QubesIncoming", remote);
    let call: Awaited<ReturnType<typeof openFileCall>>;
    try {
      call = await openFileCall(pathsOf(ctx, values).socket, {
        remote,
        source: localQubeName(),
        service: Service.CopyFrom,
        arg: "",
      });
    } catch (e) {
      if (!(e instanceof DaemonUnreachable)) throw e;
      ctx.err(`qubes-air: ${e.message}\n`);
      return EXIT.CALL_PROBLEM;
    }
    // A copy-from killed with SIGKILL could not remove its temporary file: clear such leftovers.
    const cleared = await removeOrphanedParts(dir);
    if (cleared > 0)
      ctx.err(`qubes-air: removed ${cleared} incomplete file(s) an interrupted copy-from left in ${dir}\n`);
    const head = new Uint8Array(4 + list.length);
    new DataView(head.buffer).setUint32(0, list.length, false);
    head.set(list, 4);
    await call.stdin.write(head).catch(() => {});
    let shown = false;
    // Ctrl-C or SIGTERM: the unpacker's input ends, so it removes its temporary file, and the
    // call is dropped; dying on the signal instead would leave a .qfile-*.part behind in DIR.
    const { value: unpacked, signal: interrupted } = await withSignals(call.abort, () =>
      unpackQfile(call.stdout, call.stdin, {
        dir,
        tempOwner: process.pid,
        onProgress: (bytes) => {
          if (bytes < PROGRESS_MIN_BYTES) return;
          shown = true;
          ctx.err(`\rreceived ${kib(bytes)} KiB`);
        },
      }),
    );
    if (shown) ctx.err("\n");
    call.finishReading();
    if (interrupted !== null) {
      await call.stdin.closeWrite().catch(() => {});
      ctx.err(`qubes-air: copy-from stopped by ${interrupted}; incomplete files were not kept\n`);
      return EXIT.INTERRUPTED;
    }
    await call.stdin.closeWrite().catch(() => {});
    const result = await call.result;
    if (result.broken) {
      // The unpacker saw EOF and removed its temporary file: only complete files are in DIR.
      ctx.err(brokenCopyLine("from", remote));
      return EXIT.CALL_PROBLEM;
    }
    // An input that ended early is the device stopping (it said why on stderr): no qfile line
    // on top of it. Our unpacker's own failure (DIR unusable, a full disk) is said here.
    const deviceStopped =
      (unpacked.code === LEGAL_EOF || unpacked.code === EREMOTEIO) && result.status !== EXIT.OK;
    if (unpacked.code !== 0 && !deviceStopped) {
      ctx.err(copyErrorLine(unpacked.code, unpacked.lastName));
      // 141 is only our unpacker having stopped reading: the failure is the one just said.
      return result.status === EXIT.OK || result.status === EXIT.SIGPIPE ? EXIT.FAILURE : result.status;
    }
    return result.status;
  },
};
