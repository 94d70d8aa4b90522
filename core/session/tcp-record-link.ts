/**
 * RecordLink over a reliable, ordered stream (TCP, a unix socket): every handshake message and
 * every transport record is one `u16 BE length | Noise message` frame (core/wire/tcp-frame.ts),
 * with implicit nonces (Noise spec §5.1) because nothing is ever lost or reordered.
 * Must never: decrypt a record with a key the peer has not switched to (the switch is in-band:
 * see session.ts REKEY_SWITCH), or return data after a failed decryption.
 */
import { assert, ProtocolError } from "../errors.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import { HANDSHAKE_PAYLOAD_MAX, NOISE_MAX_PLAINTEXT } from "../wire/limits.ts";
import { encodeTcpFrame, frameInPlace, TcpFrameReader } from "../wire/tcp-frame.ts";
import type { Duplex } from "./duplex.ts";
import type { RecordLink } from "./record-link.ts";

const EMPTY = new Uint8Array(0);
/** Largest handshake message: two keys, a sealed static, a capped payload, tags. */
const HANDSHAKE_MESSAGE_MAX = 32 + 48 + HANDSHAKE_PAYLOAD_MAX + 16;

export class TcpRecordLink implements RecordLink {
  readonly transport = "tcp";
  readonly maxRecord = NOISE_MAX_PLAINTEXT;
  private readonly reader = new TcpFrameReader();
  private sendKey: CipherState | null = null;
  private recvKey: CipherState | null = null;
  private records = 0;

  constructor(private readonly stream: Duplex) {}

  get recordsSinceKey(): number {
    return this.records;
  }

  async sendHandshake(message: Uint8Array): Promise<void> {
    assert(this.sendKey === null, "handshake message after keys");
    await this.stream.write(encodeTcpFrame(message));
  }

  async recvHandshake(): Promise<Uint8Array> {
    assert(this.recvKey === null, "handshake message after keys");
    const frame = await this.nextFrame();
    if (frame === null) throw new ProtocolError("link-lost", "closed during handshake");
    if (frame.length > HANDSHAKE_MESSAGE_MAX) throw new ProtocolError("handshake-malformed", "too long");
    return frame;
  }

  setSendKey(cs: CipherState): void {
    this.sendKey = cs;
    this.records = 0;
  }

  setRecvKey(cs: CipherState): void {
    this.recvKey = cs;
    this.records = 0;
  }

  async send(plaintext: Uint8Array): Promise<void> {
    assert(this.sendKey !== null, "send before keys");
    assert(plaintext.length <= NOISE_MAX_PLAINTEXT, "record too large");
    this.records++;
    // The sealed record owns its buffer (CipherFunctions.encrypt): frame it in place.
    await this.stream.write(frameInPlace(this.sendKey.encryptWithAd(EMPTY, plaintext)));
  }

  async recv(): Promise<Uint8Array | null> {
    assert(this.recvKey !== null, "recv before keys");
    const frame = await this.nextFrame();
    if (frame === null) return null;
    this.records++;
    return this.recvKey.decryptWithAd(EMPTY, frame);
  }

  close(): void {
    this.sendKey?.clear();
    this.recvKey?.clear();
    this.stream.close();
  }

  private async nextFrame(): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.reader.next();
      if (frame !== undefined) return frame;
      const chunk = await this.stream.read();
      if (chunk === null) {
        this.reader.end(); // a partial frame at EOF is a peer fault
        return null;
      }
      this.reader.push(chunk);
    }
  }
}
