/**
 * A RecordLink carries the two kinds of traffic a session has over one framed byte stream:
 * handshake messages (before keys exist) and encrypted transport records. TCP and serial frame
 * them differently (tcp-record-link.ts, serial-record-link.ts); the session sees only this.
 *
 * Contract: setSendKey/setRecvKey switch the direction to transport phase (and, when called
 * again, to a new key after a rekey); recvHandshake/recv throw ProtocolError("link-lost") on EOF
 * in the middle of a handshake, recv returns null on EOF between records. Any ProtocolError from
 * a link is fatal for the session that sees it.
 */
import type { CipherState } from "../noise/cipher-state.ts";

export interface RecordLink {
  /** "tcp" or "serial"; bound into the prologue. */
  readonly transport: string;
  sendHandshake(message: Uint8Array): Promise<void>;
  recvHandshake(): Promise<Uint8Array>;
  setSendKey(cs: CipherState): void;
  setRecvKey(cs: CipherState): void;
  /** Largest plaintext record this link carries (the framing's limit minus the AEAD tag). */
  readonly maxRecord: number;
  /**
   * Encrypts and sends one record (at most maxRecord bytes). Encryption happens before send()
   * returns its promise, so a key switch right after the call does not affect this record.
   */
  send(plaintext: Uint8Array): Promise<void>;
  /** Next decrypted record, or null at EOF. */
  recv(): Promise<Uint8Array | null>;
  /** Messages sent and received under the current keys, for the rekey limit. */
  readonly recordsSinceKey: number;
  close(): void;
  /**
   * Optional: the responder calls this once the initiator proved a pinned static key (IK
   * message 1, before the timestamp is persisted) or the pairing token (XXpsk3 message 3). A
   * listener uses it to stop treating the connection as an anonymous one that may be evicted
   * (agent/link/half-open.ts), and once the handshake completed, to remember the address as a
   * host's (agent/link/dh-budget.ts).
   */
  peerAuthenticated?(): void;
  /**
   * Optional: the responder calls this before X25519 work for a peer that has not proved a
   * pinned key; `ops` is how many DH operations follow (RESPONDER_DH_OPS). A listener with a
   * CPU budget refuses by throwing ProtocolError "handshake-rate" (agent/link/dh-budget.ts), so
   * a refused attempt costs no DH at all.
   */
  beforeDh?(ops: number): void;
  /**
   * Timing this kind of line asks for (serial: a fast keepalive and a short handshake, see
   * core/wire/limits.ts); each is a ceiling on what the session's options say. Absent: defaults.
   */
  readonly timing?: LinkTiming;
  /**
   * A count that grows whenever bytes arrive from the line, framed or not (serial): the session
   * counts it as a sign of life, so a slow line in the middle of one long frame is not "dead".
   */
  readonly bytesReceived?: number;
}

export interface LinkTiming {
  readonly keepaliveIntervalMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
}
