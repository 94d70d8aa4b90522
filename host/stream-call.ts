/**
 * The caller's end of a call, as qrexec-client-vm does it, over any call stream (the daemon
 * socket): stdin is pumped in (its EOF is sent as the stream's half-close), the callee's framed
 * output (core/qrexec/call-protocol.ts) is split onto stdout and stderr with every write
 * awaited, stdout is closed when the callee's stdout ends (so a reader of our stdout sees EOF
 * then, not at our exit), and the exit status is returned. Anything that ends the stream before
 * an exit status is a broken call: 125.
 *
 * Unlike runtime/call-client.ts this closes stdout at the callee's stdout EOF, which a qrexec
 * service (the relay) needs; `refusedMessage` prints qrexec-client-vm's "Request refused" on 126.
 * Must never: report a status the callee did not send, except 125 for a broken call.
 */
import { EXIT_PROBLEM, EXIT_REFUSED, OutputReader } from "../core/qrexec/call-protocol.ts";
import type { CallChannel } from "../runtime/call-exec.ts";
import type { ByteSink, ByteSource } from "../transport/transport.ts";

export interface CallStreams {
  /** null: the callee gets EOF on stdin at once; "caller": the caller writes to the channel itself. */
  readonly stdin: Pick<ByteSource, "read"> | null | "caller";
  readonly stdout: Pick<ByteSink, "write" | "closeWrite">;
  readonly stderr: Pick<ByteSink, "write">;
}

export interface CallResult {
  readonly status: number;
  /** True when the stream ended without an exit status (status is then 125). */
  readonly broken: boolean;
}

export async function streamCall(
  channel: CallChannel,
  io: CallStreams,
  options: { refusedMessage: boolean },
): Promise<CallResult> {
  if (io.stdin !== "caller") void pumpStdin(channel, io.stdin);
  const reader = new OutputReader();
  let status: number | null = null;
  let stdoutOpen = true;
  let stderrOpen = true;
  try {
    for (let chunk = await channel.read(); chunk !== null; chunk = await channel.read()) {
      reader.push(chunk);
      for (let e = reader.next(); e !== undefined; e = reader.next()) {
        switch (e.type) {
          case "stdout":
            if (stdoutOpen) await io.stdout.write(e.data).catch(() => (stdoutOpen = false));
            break;
          case "stderr":
            if (stderrOpen) await io.stderr.write(e.data).catch(() => (stderrOpen = false));
            break;
          case "stdout-eof":
            if (stdoutOpen) await io.stdout.closeWrite().catch(() => {});
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
    status = null; // the stream failed or the output was malformed
  }
  if (status === null || !reader.finished) {
    channel.close();
    return { status: EXIT_PROBLEM, broken: true };
  }
  channel.close();
  if (status === EXIT_REFUSED && options.refusedMessage) {
    await io.stderr.write(new TextEncoder().encode("Request refused\n")).catch(() => {});
  }
  return { status, broken: false };
}

async function pumpStdin(channel: CallChannel, stdin: Pick<ByteSource, "read"> | null): Promise<void> {
  try {
    if (stdin) for (let c = await stdin.read(); c !== null; c = await stdin.read()) await channel.write(c);
    await channel.closeWrite();
  } catch {
    // the callee finished or the stream broke: the output side reports the outcome
  }
}
