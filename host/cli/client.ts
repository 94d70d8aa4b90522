/**
 * The client side of the daemon socket (host/control-wire.ts), for the CLI and the relay:
 * one-shot requests, a conversation (pairing), and calls (the socket then is the call's stream:
 * write stdin to it, read the framed call output from it; calls/caller.ts runs it).
 * Must never: wait forever on a daemon that closed the connection (EOF is an error here).
 */
import * as net from "node:net";
import { encodeMessage, MessageReader } from "../../calls/socket-messages.ts";
import { ConfigError } from "../../core/errors.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import { duplexStream } from "../../transport/node-stream.ts";
import { type ByteStream, toTransportError } from "../../transport/transport.ts";
import { type CallTarget, DaemonUnreachable, openDaemonCall as openDaemonCallWith } from "../daemon-call.ts";

export { type CallTarget, DaemonUnreachable };

export function connectDaemon(socket: string): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: socket, allowHalfOpen: true });
    const onError = (e: Error) => reject(new DaemonUnreachable(socket, toTransportError(socket, e).code));
    sock.once("error", onError);
    sock.once("connect", () => {
      sock.off("error", onError);
      resolve(duplexStream(sock, `unix ${socket}`));
    });
  });
}

export interface Conversation {
  send(message: CborMap): Promise<void>;
  /** The daemon's next message; a closed connection is an error. */
  next(): Promise<CborMap>;
  close(): void;
}

export async function converse(socket: string, first: CborMap): Promise<Conversation> {
  const sock = await connectDaemon(socket);
  const reader = new MessageReader(sock, "answer");
  const send = (m: CborMap) => sock.write(encodeMessage("request", m));
  await send(first);
  return {
    send,
    async next() {
      const m = await reader.next();
      if (m === null) throw new ConfigError("the daemon closed the connection without an answer", 1);
      return m;
    },
    close: () => sock.close(),
  };
}

/** One request, one answer; {ok:false, error} becomes a ConfigError with the daemon's message. */
export async function request(socket: string, message: CborMap): Promise<CborMap> {
  const c = await converse(socket, message);
  try {
    return checked(await c.next());
  } finally {
    c.close();
  }
}

export function checked(answer: CborMap): CborMap {
  if (answer.ok === true) return answer;
  throw new ConfigError(
    typeof answer.error === "string" ? answer.error : "the daemon refused the request",
    1,
  );
}

/** A call through the daemon over node:net (the CLI); the relay uses its Bun-native connect. */
export function openDaemonCall(socket: string, call: CallTarget): Promise<ByteStream> {
  return openDaemonCallWith(connectDaemon, socket, call);
}
