/**
 * The caller side of a qrexec call: opens a channel with the request, streams stdin into it,
 * and splits the callee's framed output into stdout and stderr until the exit status arrives.
 * Like qrexec-client-vm: 126 prints "Request refused", and any failure of the link or the
 * channel before an exit status is 125.
 * Must never: report a status the callee did not send, except 125 for a broken call.
 */
import { EXIT_PROBLEM, EXIT_REFUSED, OutputReader } from "../core/qrexec/call-protocol.ts";
import type { ByteSink, ByteSource } from "../transport/transport.ts";
import type { CallChannel } from "./call-exec.ts";

export interface CallIo {
  /** null: the callee gets EOF on stdin at once. */
  readonly stdin: Pick<ByteSource, "read"> | null;
  /**
   * closeWrite, when given, is called as soon as the callee's stdout ends, so a pipeline sees
   * EOF before the call is over (qrexec does so). stderr stays open: "Request refused" goes there.
   */
  readonly stdout: Pick<ByteSink, "write"> & Partial<Pick<ByteSink, "closeWrite">>;
  readonly stderr: Pick<ByteSink, "write">;
}

/** Runs the call on an already opened channel; resolves with the exit status. */
export async function runCall(channel: CallChannel, io: CallIo): Promise<number> {
  const sending = pumpStdin(channel, io.stdin);
  const reader = new OutputReader();
  let status: number | null = null;
  const outputOpen = { stdout: true, stderr: true };
  try {
    for (let chunk = await channel.read(); chunk !== null; chunk = await channel.read()) {
      reader.push(chunk);
      for (let e = reader.next(); e !== undefined; e = reader.next()) {
        if (e.type === "stdout" && outputOpen.stdout)
          await io.stdout.write(e.data).catch(() => (outputOpen.stdout = false));
        else if (e.type === "stderr" && outputOpen.stderr)
          await io.stderr.write(e.data).catch(() => (outputOpen.stderr = false));
        else if (e.type === "stdout-eof") await io.stdout.closeWrite?.().catch(() => {});
        else if (e.type === "exit") status = e.status;
      }
    }
  } catch {
    status = null; // reset, link lost, or a malformed answer: the call broke
  }
  if (status === null || !reader.finished) {
    channel.close();
    return EXIT_PROBLEM;
  }
  // stdin may still be open (the callee need not read it all): the call is over regardless.
  void sending;
  if (status === EXIT_REFUSED)
    await io.stderr.write(new TextEncoder().encode("Request refused\n")).catch(() => {});
  return status;
}

async function pumpStdin(channel: CallChannel, stdin: CallIo["stdin"]): Promise<void> {
  try {
    if (stdin) for (let c = await stdin.read(); c !== null; c = await stdin.read()) await channel.write(c);
    await channel.closeWrite();
  } catch {
    // The callee finished or the channel broke; the output side reports the outcome.
  }
}
