/**
 * A local client's call socket bridged to the call's vchan channel, in both daemons: the host
 * daemon's socket (`qubes-air call`, the relay) and the agent's (`qubes-air-agent call`, calls
 * from the device into Qubes). After the request, socket -> channel is the caller's stdin and
 * channel -> socket is the callee's framed output (core/qrexec/call-protocol.ts), passed through
 * unparsed, so the exit status the callee sent is exactly what the client reads. One chunk is in
 * flight per direction (each write is awaited before the next read).
 *
 * If the channel fails mid-call the socket gets EOF without an exit message, which the client
 * reports as 125. If the client goes away, the channel is reset, which stops the callee.
 * Must never: close the socket before the client's stdin reached EOF. Closing a unix socket with
 * unread data makes the client's next read fail with ECONNRESET, and it loses the exit status
 * that is already on its way; so what the client still sends is read and dropped first.
 */
import type { ByteStream } from "../transport/transport.ts";
import { finishCall } from "./callee.ts";
import type { CallChannel } from "./channel.ts";

export async function bridgeSocket(
  sock: ByteStream,
  firstStdin: Uint8Array,
  channel: CallChannel,
): Promise<void> {
  const up = (async () => {
    let channelOk = true;
    const forward = async (chunk: Uint8Array) => {
      if (!channelOk) return; // the call is over or broken: keep draining the client's stdin
      await channel.write(chunk).catch(() => {
        channelOk = false;
      });
    };
    try {
      if (firstStdin.length > 0) await forward(firstStdin);
      for (let c = await sock.read(); c !== null; c = await sock.read()) await forward(c);
    } catch {
      channel.close(); // the client is gone: stop the callee
      return;
    }
    if (channelOk) await channel.closeWrite().catch(() => {});
  })();
  const down = (async () => {
    let chunk: Uint8Array | null;
    for (;;) {
      try {
        chunk = await channel.read();
      } catch {
        break; // reset or link lost: EOF without an exit status tells the client
      }
      if (chunk === null) break;
      try {
        await sock.write(chunk);
      } catch {
        channel.close();
        return;
      }
    }
    await sock.closeWrite().catch(() => {});
  })();
  await Promise.all([up, down]);
  channel.close();
  sock.close();
}

/** Answers a call that cannot run (unknown remote, link down, bad request) like a finished one. */
export async function answerWithoutCall(sock: ByteStream, status: number, message: string): Promise<void> {
  try {
    const { drained } = await finishCall(sock, status, message.endsWith("\n") ? message : `${message}\n`);
    await drained; // see the header
  } catch {
    // the client went away
  }
  sock.close();
}
