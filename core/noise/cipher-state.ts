/**
 * CipherState (Noise spec rev 34 §5.1): a key k and a 64-bit nonce n.
 *
 * Must never: reuse a nonce, wrap n, or advance n after a failed decryption (the bug class of
 * flynn/noise GHSA-g9mp-8g3h-3c5c and snow GHSA-7g9j-g5jg-3vv3). n is a bigint so that every one
 * of the 64 bits is real (unlike noise-handshake's 32-bit nonce write).
 */
import { assert, ProtocolError } from "../errors.ts";
import { NONCE_REFUSE_AT } from "../wire/limits.ts";
import type { CipherFunctions } from "./crypto.ts";

const MAX_NONCE = 2n ** 64n - 1n; // reserved by the spec (§5.1)

export class CipherState {
  private k: Uint8Array | null = null;
  private n = 0n;

  constructor(
    private readonly cipher: CipherFunctions,
    /** Stop before the spec's limit; a session re-handshakes long before (limits.ts). */
    private readonly refuseAt: bigint = NONCE_REFUSE_AT,
  ) {}

  initializeKey(key: Uint8Array | null): void {
    assert(key === null || key.length === 32, "cipher key must be 32 bytes");
    this.k = key;
    this.n = 0n;
  }

  hasKey(): boolean {
    return this.k !== null;
  }

  get nonce(): bigint {
    return this.n;
  }

  /** Spec §5.1 SetNonce: for transports that carry an explicit counter (§11.4). */
  setNonce(n: bigint): void {
    assert(n >= 0n && n < MAX_NONCE, "nonce out of range");
    this.n = n;
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.k === null) return plaintext;
    if (this.n >= this.refuseAt) throw new ProtocolError("nonce-exhausted");
    const ciphertext = this.cipher.encrypt(this.k, this.n, ad, plaintext);
    this.n += 1n;
    return ciphertext;
  }

  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.k === null) return ciphertext;
    if (this.n >= this.refuseAt) throw new ProtocolError("nonce-exhausted");
    let plaintext: Uint8Array;
    try {
      plaintext = this.cipher.decrypt(this.k, this.n, ad, ciphertext);
    } catch {
      throw new ProtocolError("decrypt"); // n unchanged: a forged message cannot desync us
    }
    this.n += 1n;
    return plaintext;
  }

  /** Spec §4.2 REKEY(k): k = first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros). n is kept. */
  rekey(): void {
    assert(this.k !== null, "rekey without a key");
    this.k = this.cipher.encrypt(this.k, MAX_NONCE, new Uint8Array(0), new Uint8Array(32)).subarray(0, 32);
  }

  /** Best effort: JS gives no guarantee the old bytes are gone, but we stop referencing them. */
  clear(): void {
    this.k?.fill(0);
    this.k = null;
  }
}
