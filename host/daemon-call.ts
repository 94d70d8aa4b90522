/**
 * Opening a call through the daemon's unix socket: the `call` request, after which the socket
 * carries the call stream (docs/host.md "Socket protocol"). Kept free of node:net so the relay
 * binary can use it with its Bun-native connect (host/relay/bun-io.ts) and start fast.
 */

import { encodeMessage } from "../calls/socket-messages.ts";
import { ConfigError } from "../core/errors.ts";
import type { ByteStream } from "../transport/transport.ts";

export class DaemonUnreachable extends ConfigError {
  constructor(socket: string, code: string) {
    super(
      `the qubes-air daemon is not running (${code} on ${socket}): start it with ` +
        "`systemctl --user start qubes-air` or `qubes-air daemon`",
      1,
    );
  }
}

export interface CallTarget {
  readonly remote: string;
  readonly source: string;
  readonly service: string;
  readonly arg: string;
}

export async function openDaemonCall(
  connect: (socket: string) => Promise<ByteStream>,
  socket: string,
  call: CallTarget,
): Promise<ByteStream> {
  let sock: ByteStream;
  try {
    sock = await connect(socket);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new DaemonUnreachable(socket, (e as { code?: string }).code ?? "io");
  }
  await sock.write(encodeMessage("request", { op: "call", ...call }));
  return sock;
}
