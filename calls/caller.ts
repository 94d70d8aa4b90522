/**
 * The caller's end of a call, as qrexec-client-vm does it, over any call channel (a vchan
 * channel, or the daemon's / the agent's unix socket): stdin is pumped in (its EOF is the
 * channel's half-close), the callee's framed output (core/qrexec/call-protocol.ts) is split onto
 * stdout and stderr with every write awaited, and the exit status is returned. Anything that ends
 * the channel before an exit status is a broken call: 125. Once the status has arrived the call
 * is over, whether or not all of stdin was sent (as in qrexec), and the channel is closed.
 * If our stdout's reader goes away (EPIPE), the call ends as a process killed by SIGPIPE would:
 * the channel is reset (the callee's output has nowhere to go) and the status is 141; any other
 * failure to write stdout is 125. Output that could not be delivered never ends in success.
 * Must never: report a status the callee did not send, except 125 for a broken call and 141 for
 * a closed stdout.
 */
import { EXIT_PROBLEM, EXIT_REFUSED, EXIT_SIGPIPE, OutputReader } from "../core/qrexec/call-protocol.ts";
import { type ByteSink, type ByteSource, TransportError } from "../transport/transport.ts";
import type { CallChannel } from "./channel.ts";

export interface CallerIo {
  /** null: the callee gets EOF on stdin at once; "caller": the caller writes to the channel itself. */
  readonly stdin: Pick<ByteSource, "read"> | null | "caller";
  readonly stdout: Pick<ByteSink, "write"> & Partial<Pick<ByteSink, "closeWrite">>;
  /** Stays open to the end: our own messages ("Request refused") go there. */
  readonly stderr: Pick<ByteSink, "write">;
}

export interface CallerOptions {
  /**
   * Close our stdout as soon as the callee's stdout ends, so a reader of it sees EOF then rather
   * than at our exit (a qrexec service such as the relay must). Needs stdout.closeWrite.
   */
  readonly closeStdoutAtEof?: boolean;
  /** Print qrexec-client-vm's "Request refused" on 126 (default true; the relay passes false). */
  readonly refusedMessage?: boolean;
}

export interface CallResult {
  readonly status: number;
  /** True when the channel ended without an exit status (status is then 125). */
  readonly broken: boolean;
}

export async function runCall(
  channel: CallChannel,
  io: CallerIo,
  options: CallerOptions = {},
): Promise<CallResult> {
  if (io.stdin !== "caller") void pumpStdin(channel, io.stdin);
  const reader = new OutputReader();
  let status: number | null = null;
  let stdoutFailed: unknown = null;
  let stdoutOpen = true;
  let stderrOpen = true;
  try {
    reading: for (let chunk = await channel.read(); chunk !== null; chunk = await channel.read()) {
      reader.push(chunk);
      for (let e = reader.next(); e !== undefined; e = reader.next()) {
        switch (e.type) {
          case "stdout":
            if (!stdoutOpen) break;
            try {
              await io.stdout.write(e.data);
            } catch (error) {
              stdoutFailed = error;
              break reading;
            }
            break;
          case "stderr":
            if (stderrOpen) await io.stderr.write(e.data).catch(() => (stderrOpen = false));
            break;
          case "stdout-eof":
            if (stdoutOpen && options.closeStdoutAtEof) await io.stdout.closeWrite?.().catch(() => {});
            stdoutOpen = false;
            break;
          case "stderr-eof":
            break; // our stderr stays open for our own messages
          case "exit":
            status = e.status;
            break;
        }
      }
    }
  } catch {
    status = null; // reset, link lost, or a malformed answer: the call broke
  }
  channel.close();
  if (stdoutFailed !== null) {
    const epipe = stdoutFailed instanceof TransportError && stdoutFailed.code === "EPIPE";
    return { status: epipe ? EXIT_SIGPIPE : EXIT_PROBLEM, broken: false };
  }
  if (status === null || !reader.finished) return { status: EXIT_PROBLEM, broken: true };
  if (status === EXIT_REFUSED && options.refusedMessage !== false)
    await io.stderr.write(new TextEncoder().encode("Request refused\n")).catch(() => {});
  return { status, broken: false };
}

async function pumpStdin(channel: CallChannel, stdin: Pick<ByteSource, "read"> | null): Promise<void> {
  try {
    if (stdin) for (let c = await stdin.read(); c !== null; c = await stdin.read()) await channel.write(c);
    await channel.closeWrite();
  } catch {
    // the callee finished or the channel broke: the output side reports the outcome
  }
}
