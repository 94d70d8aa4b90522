/**
 * A RecordLink that reports a TCP handshake's progress to its HalfOpenTable slot (the offer
 * arrived; the peer proved a pinned key) and that the table can kill: a killed link fails its
 * pending and later handshake reads and writes with a fixed ProtocolError (handshake-timeout
 * for a late offer, handshake-rate for an eviction) and closes the connection.
 * It also pays for the handshake's DH work from the global budget (agent/link/dh-budget.ts): an
 * unpaid attempt fails with handshake-rate before any DH runs. Once a pinned host's reconnect is
 * complete (its keys installed after the timestamp was accepted), or a token pairing is, it
 * reports the address as a known host's; a peer that only proved the key (a replayed message 1)
 * never does, nor a code pairing (anyone can complete its handshake).
 * Must never: report progress the handshake has not made, let DH work run unpaid, or outlive a
 * kill (every handshake call after kill() throws).
 */
import { ProtocolError } from "../../core/errors.ts";
import type { CipherState } from "../../core/noise/cipher-state.ts";
import type { RecordLink } from "../../core/session/record-link.ts";
import type { EvictReason, HalfOpen } from "./half-open.ts";

type Progress = Pick<HalfOpen, "offered" | "authenticated">;

/** The listener's view of one connection's source address. */
export interface Admission {
  /** Pays for `ops` DH operations; false when the budget is spent. */
  spend(ops: number): boolean;
  /** A pinned host (reconnect) or a token pairing sent its first transport record from here. */
  hostConnected(): void;
}

export class HalfOpenLink implements RecordLink {
  private slot: Progress | null = null;
  private killed: ProtocolError | null = null;
  private rejectKilled: (e: ProtocolError) => void = () => {};
  private readonly whenKilled = new Promise<never>((_, reject) => {
    this.rejectKilled = reject;
  });
  private offerSeen = false;
  private peerProved = false;

  constructor(
    private readonly inner: RecordLink,
    private readonly admission?: Admission,
  ) {
    this.whenKilled.catch(() => {}); // observed through the races below
  }

  get transport(): string {
    return this.inner.transport;
  }

  get maxRecord(): number {
    return this.inner.maxRecord;
  }

  get recordsSinceKey(): number {
    return this.inner.recordsSinceKey;
  }

  /** Where progress goes (set once the table admitted the connection). */
  attach(slot: Progress): void {
    this.slot = slot;
  }

  /** The table evicted this connection: fail the handshake and close. */
  kill(reason: EvictReason): void {
    if (this.killed) return;
    this.killed =
      reason === "offer-timeout"
        ? new ProtocolError("handshake-timeout", "no offer in time")
        : new ProtocolError("handshake-rate", `evicted (${reason})`);
    this.rejectKilled(this.killed);
    this.inner.close();
  }

  async sendHandshake(message: Uint8Array): Promise<void> {
    if (this.killed) throw this.killed;
    await Promise.race([this.inner.sendHandshake(message), this.whenKilled]);
  }

  async recvHandshake(): Promise<Uint8Array> {
    if (this.killed) throw this.killed;
    const message = await Promise.race([this.inner.recvHandshake(), this.whenKilled]);
    if (!this.offerSeen) {
      // The first handshake message the responder reads is the cleartext offer.
      this.offerSeen = true;
      this.slot?.offered();
    }
    return message;
  }

  peerAuthenticated(): void {
    this.peerProved = true;
    this.slot?.authenticated();
  }

  beforeDh(ops: number): void {
    if (this.admission && !this.admission.spend(ops)) {
      throw new ProtocolError("handshake-rate", "handshake work budget spent");
    }
  }

  setSendKey(cs: CipherState): void {
    this.inner.setSendKey(cs);
  }

  setRecvKey(cs: CipherState): void {
    this.inner.setRecvKey(cs);
  }

  send(plaintext: Uint8Array): Promise<void> {
    return this.inner.send(plaintext);
  }

  async recv(): Promise<Uint8Array | null> {
    const record = await this.inner.recv();
    // The address is remembered at the first transport record that decrypts, not when the keys
    // are installed: a replayed IK message 1 from an on-path attacker's own address passes the
    // timestamp and pairing id, but only the real host holds the keys to send a record.
    if (record !== null && this.peerProved) {
      this.peerProved = false;
      this.admission?.hostConnected();
    }
    return record;
  }

  close(): void {
    this.inner.close();
  }
}
