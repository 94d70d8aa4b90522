/**
 * The callee side of a qrexec call (core/qrexec/call-protocol.ts): runs a local process for a
 * call channel and streams it: channel -> stdin, stdout/stderr -> framed messages, then the
 * exit status after both output streams ended. Used by the agent for its services and by the
 * host for calls from a device into Qubes (qrexec-client-vm).
 *
 * Nothing is buffered beyond one chunk per stream: each read is written (and awaited) before the
 * next, so a slow reader on either side holds back the other through vchan credit and pipes.
 * Must never: report an exit status before both output streams are drained, or let a failure
 * of one pump hang the call (every path ends in one exit status or a channel reset).
 */
import {
  EXIT_NOT_FOUND,
  EXIT_PROBLEM,
  encodeExit,
  encodeOutput,
  MAX_OUTPUT_CHUNK,
  OutputType,
} from "../core/qrexec/call-protocol.ts";
import { type ChildProcess, exitStatusOf, SpawnError } from "../platform/platform.ts";
import type { ByteSource, ByteStream } from "../transport/transport.ts";
import { OrderedWriter } from "./ordered-writer.ts";

/** What a call channel offers (core/vchan/channel.ts Channel has this shape). */
export type CallChannel = Pick<ByteStream, "read" | "write" | "closeWrite" | "close">;

/** Ends a call without running anything: empty output streams, then `status` (126, 127, 125). */
export async function finishCall(channel: CallChannel, status: number, stderrText?: string): Promise<void> {
  const out = new OrderedWriter((d) => channel.write(d));
  if (stderrText) void out.send(encodeOutput(OutputType.STDERR, new TextEncoder().encode(stderrText)));
  void out.send(encodeOutput(OutputType.STDOUT, new Uint8Array(0)));
  void out.send(encodeOutput(OutputType.STDERR, new Uint8Array(0)));
  await out.send(encodeExit(status));
  await channel.closeWrite();
  // Drain whatever stdin the caller still sends, so its writes complete.
  void drain(channel);
}

/**
 * Runs the process `start()` creates for this call and streams it. Returns the exit status
 * sent to the caller (127 when the program does not exist, 125 on a local failure).
 */
export async function runCallProcess(
  channel: CallChannel,
  start: () => Promise<ChildProcess>,
): Promise<number> {
  let child: ChildProcess;
  try {
    child = await start();
  } catch (error) {
    const status = error instanceof SpawnError && error.code === "ENOENT" ? EXIT_NOT_FOUND : EXIT_PROBLEM;
    await finishCall(channel, status).catch(() => channel.close());
    return status;
  }
  const out = new OrderedWriter((d) => channel.write(d));
  // stdin is not awaited: a service may exit without reading all of it (qrexec ends the call
  // when the service's outputs end), but a channel failure there must stop the process.
  pumpStdin(channel, child).catch(() => {
    child.kill("SIGTERM");
    channel.close();
  });
  try {
    const [stdoutOk, stderrOk] = await Promise.all([
      pumpOutput(child.stdout, OutputType.STDOUT, out),
      pumpOutput(child.stderr, OutputType.STDERR, out),
    ]);
    const info = await child.exited;
    const status = stdoutOk && stderrOk ? exitStatusOf(info) : EXIT_PROBLEM;
    await out.send(encodeExit(status));
    await channel.closeWrite();
    return status;
  } catch {
    // The channel failed (reset by the caller, or the link went away): stop the process.
    child.kill("SIGTERM");
    channel.close();
    await child.exited;
    return EXIT_PROBLEM;
  }
}

async function pumpStdin(channel: CallChannel, child: ChildProcess): Promise<boolean> {
  const stdin = child.stdin;
  for (let chunk = await channel.read(); chunk !== null; chunk = await channel.read()) {
    if (stdin === null) continue;
    try {
      await stdin.write(chunk);
    } catch {
      // The service closed its stdin early (EPIPE): keep reading so the caller is not blocked.
      return drain(channel).then(() => true);
    }
  }
  await stdin?.closeWrite().catch(() => {});
  return true;
}

/** Streams one output of the process; false if reading it failed (the status becomes 125). */
async function pumpOutput(source: ByteSource | null, type: OutputType, out: OrderedWriter): Promise<boolean> {
  let ok = true;
  if (source) {
    try {
      for (let chunk = await source.read(); chunk !== null; chunk = await source.read()) {
        for (let i = 0; i < chunk.length; i += MAX_OUTPUT_CHUNK) {
          await out.send(encodeOutput(type, chunk.subarray(i, i + MAX_OUTPUT_CHUNK)));
        }
      }
    } catch (error) {
      if (isChannelFailure(error)) throw error;
      ok = false;
    }
  }
  await out.send(encodeOutput(type, new Uint8Array(0))); // zero length = EOF of this stream
  return ok;
}

function isChannelFailure(error: unknown): boolean {
  const name = (error as Error)?.name;
  return name === "ChannelResetError" || name === "ProtocolError";
}

async function drain(source: Pick<ByteSource, "read">): Promise<void> {
  try {
    while ((await source.read()) !== null) {}
  } catch {
    // the channel ended: nothing more to drain
  }
}
