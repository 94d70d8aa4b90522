/**
 * A RecordLink for the handshake phase only: recvHandshake plays back given messages, then
 * reports the link lost; sendHandshake keeps what was sent. For core/session/handshake.test.ts
 * and the handshake fuzz test. Must never: be used past the handshake (send/recv throw).
 */
import { ProtocolError } from "../../core/errors.ts";
import type { RecordLink } from "../../core/session/record-link.ts";

export class ScriptedLink implements RecordLink {
  readonly transport = "tcp";
  readonly maxRecord = 65519;
  readonly recordsSinceKey = 0;
  readonly sent: Uint8Array[] = [];
  constructor(private readonly script: Uint8Array[]) {}
  async sendHandshake(message: Uint8Array): Promise<void> {
    this.sent.push(message);
  }
  async recvHandshake(): Promise<Uint8Array> {
    const next = this.script.shift();
    if (next === undefined) throw new ProtocolError("link-lost", "closed during handshake");
    return next;
  }
  setSendKey(): void {}
  setRecvKey(): void {}
  send(): Promise<void> {
    throw new Error("not in a handshake");
  }
  recv(): Promise<Uint8Array | null> {
    throw new Error("not in a handshake");
  }
  close(): void {}
}
