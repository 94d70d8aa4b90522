/**
 * A service process as the callee of a call: channel -> the process's stdin, its stdout and
 * stderr -> the call's output (callee.ts), then its exit status once both outputs ended. Used by
 * the agent for its services and by the host for calls from a device into Qubes
 * (qrexec-client-vm).
 *
 * Nothing is buffered beyond one chunk per stream: each read is written (and awaited) before the
 * next, so a slow reader on either side holds back the other through vchan credit and pipes.
 * The process is stopped (SIGTERM) as soon as its channel closes: a reset, a lost session or a
 * peer that went away stops it even when it neither reads nor writes any more (the pumps notice
 * a failed channel only at their next read or write), so a peer cannot leave processes behind,
 * up to the channel cap per session, session after session. This holds on both sides: the
 * agent's services and the host's calls from a device into Qubes.
 * Must never: report an exit status before both output streams are drained, let a failure of
 * one pump hang the call (every path ends in one exit status or a channel reset), or leave the
 * process running after its channel closed.
 */
import { ProtocolError } from "../core/errors.ts";
import { EXIT_NOT_FOUND, EXIT_PROBLEM } from "../core/qrexec/call-protocol.ts";
import { ChannelResetError } from "../core/vchan/channel.ts";
import { type ChildProcess, exitStatusOf, SpawnError } from "../platform/platform.ts";
import type { ByteSink, ByteSource } from "../transport/transport.ts";
import { CallOutput, finishCall } from "./callee.ts";
import { type CallChannel, drain } from "./channel.ts";

/**
 * Runs the process `start()` creates for this call and streams it. Returns the exit status
 * sent to the caller (127 when the program does not exist, 125 on a local failure).
 */
export async function runCallProcess(
  channel: CallChannel & { readonly closed: Promise<void> },
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
  // After a normal end the channel closes only once the process has exited: kill is a no-op.
  void channel.closed.then(() => child.kill("SIGTERM"));
  const out = new CallOutput(channel);
  // stdin is not awaited: a service may exit without reading all of it (qrexec ends the call
  // when the service's outputs end), but a channel failure there must stop the process.
  pumpStdin(channel, child).catch(() => {
    child.kill("SIGTERM");
    channel.close();
  });
  try {
    const [stdoutOk, stderrOk] = await Promise.all([
      pumpOutput(child.stdout, out.stdout),
      pumpOutput(child.stderr, out.stderr),
    ]);
    const info = await child.exited;
    const status = stdoutOk && stderrOk ? exitStatusOf(info) : EXIT_PROBLEM;
    await out.finish(status);
    return status;
  } catch {
    // The channel failed (reset by the caller, or the link went away): stop the process.
    child.kill("SIGTERM");
    channel.close();
    await child.exited;
    return EXIT_PROBLEM;
  }
}

async function pumpStdin(channel: CallChannel, child: ChildProcess): Promise<void> {
  const stdin = child.stdin;
  for (let chunk = await channel.read(); chunk !== null; chunk = await channel.read()) {
    if (stdin === null) continue;
    try {
      await stdin.write(chunk);
    } catch {
      // The service closed its stdin early (EPIPE): keep reading so the caller is not blocked.
      return drain(channel);
    }
  }
  await stdin?.closeWrite().catch(() => {});
}

/**
 * Streams one output of the process, then its EOF; false if reading it failed (the status
 * becomes 125). A failure of the channel is rethrown: the call is over.
 */
async function pumpOutput(source: ByteSource | null, sink: ByteSink): Promise<boolean> {
  let ok = true;
  if (source) {
    try {
      for (let chunk = await source.read(); chunk !== null; chunk = await source.read())
        await sink.write(chunk);
    } catch (error) {
      if (error instanceof ChannelResetError || error instanceof ProtocolError) throw error;
      ok = false;
    }
  }
  await sink.closeWrite();
  return ok;
}
