/**
 * The daemon's side of a socket `call`: after the request, the socket is bridged byte-for-byte
 * to the call's vchan channel. socket -> channel is the caller's stdin; channel -> socket is the
 * callee's framed output (core/qrexec/call-protocol.ts), passed through unparsed, so the exit
 * status the device sent is exactly what the client reads. One chunk is in flight per direction
 * (each write is awaited before the next read): no buffering beyond the streams' own windows.
 *
 * If the link fails mid-call the socket gets EOF without an exit message, which the client
 * reports as 125 (a qrexec problem). If the client goes away, the channel is reset, which stops
 * the service on the device.
 * Must never: close the socket before the client's stdin reached EOF (closing a unix socket with
 * unread data makes the client's next read fail with ECONNRESET and lose the exit status).
 */
import { encodeExit, encodeOutput, OutputType } from "../core/qrexec/call-protocol.ts";
import type { Channel } from "../core/vchan/channel.ts";
import type { ByteStream } from "../transport/transport.ts";

export async function bridgeCall(sock: ByteStream, firstStdin: Uint8Array, channel: Channel): Promise<void> {
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
      channel.close(); // the client is gone: stop the service
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
  sock.close();
}

/** Answers a call that cannot run (unknown remote, link down) like a finished call. */
export async function answerWithoutCall(sock: ByteStream, status: number, message: string): Promise<void> {
  const te = new TextEncoder();
  try {
    for (const m of [
      encodeOutput(OutputType.STDERR, te.encode(message.endsWith("\n") ? message : `${message}\n`)),
      encodeOutput(OutputType.STDOUT, new Uint8Array(0)),
      encodeOutput(OutputType.STDERR, new Uint8Array(0)),
      encodeExit(status),
    ]) {
      await sock.write(m);
    }
    await sock.closeWrite();
    while ((await sock.read()) !== null) {} // drain the client's stdin (see the header)
  } catch {
    // the client went away
  }
  sock.close();
}
