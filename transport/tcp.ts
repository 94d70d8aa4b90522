/**
 * TCP streams: connect with a timeout, listen with port 0 support. TCP_NODELAY is always on:
 * the link sends whole frames and waits for replies, so Nagle would only add latency.
 *
 * Must never swallow a listen failure: a port in use is an operator fault (ConfigError).
 */

import * as net from "node:net";
import { ConfigError } from "../core/errors.ts";
import { duplexStream } from "./node-stream.ts";
import { type ByteStream, TransportError, toTransportError } from "./transport.ts";

export interface TcpConnectOptions {
  /** Give up connecting after this long (default 10 s); the error has code "ETIMEDOUT". */
  timeoutMs?: number;
}

/** Who connected: for per-source rate limits and logs. */
export interface TcpPeer {
  readonly address: string;
  readonly port: number;
}

export interface TcpListener {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Stops accepting; accepted connections stay open. */
  close(): Promise<void>;
}

function describe(host: string, port: number): string {
  return host.includes(":") ? `tcp [${host}]:${port}` : `tcp ${host}:${port}`;
}

export function tcpConnect(host: string, port: number, options: TcpConnectOptions = {}): Promise<ByteStream> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const description = describe(host, port);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new TransportError(`${description}: connect timed out after ${timeoutMs} ms`, "ETIMEDOUT"));
    }, timeoutMs);
    const onError = (e: Error) => {
      clearTimeout(timer);
      reject(toTransportError(`${description}: connect`, e));
    };
    sock.once("error", onError);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.off("error", onError);
      sock.setNoDelay(true);
      resolve(duplexStream(sock, description));
    });
  });
}

export function tcpListen(
  host: string,
  port: number,
  onConnection: (stream: ByteStream, peer: TcpPeer) => void,
): Promise<TcpListener> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a peer's FIN must only end our read side (closeWrite semantics).
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      sock.setNoDelay(true);
      const peer = { address: sock.remoteAddress ?? "?", port: sock.remotePort ?? 0 };
      onConnection(duplexStream(sock, describe(peer.address, peer.port)), peer);
    });
    server.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE" || e.code === "EACCES" || e.code === "EADDRNOTAVAIL") {
        reject(
          new ConfigError(
            `cannot listen on ${describe(host, port)} (${e.code}): choose another address or port, ` +
              "or stop the program that holds it",
          ),
        );
      } else reject(toTransportError(`${describe(host, port)}: listen`, e));
    });
    server.listen({ host, port }, () => {
      const bound = (server.address() as net.AddressInfo).port;
      resolve({
        port: bound,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
