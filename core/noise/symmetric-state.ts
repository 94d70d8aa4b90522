/**
 * SymmetricState (Noise spec rev 34 §5.2): chaining key ck, handshake hash h, and a CipherState.
 * Must never: be used after split() (asserted), or expose ck (only h is for channel binding, §11.2).
 */
import { assert } from "../errors.ts";
import { CipherState } from "./cipher-state.ts";
import type { CipherFunctions, HashFunctions } from "./crypto.ts";

const EMPTY = new Uint8Array(0);
const BYTE_1 = Uint8Array.of(1);
const BYTE_2 = Uint8Array.of(2);
const BYTE_3 = Uint8Array.of(3);

/** HKDF(chaining_key, input_key_material, num_outputs) of §4.3, with 2 or 3 outputs. */
export function hkdf(hash: HashFunctions, ck: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  const tempKey = hash.hmac(ck, ikm);
  const output1 = hash.hmac(tempKey, BYTE_1);
  const output2 = hash.hmac(tempKey, output1, BYTE_2);
  if (outputs === 2) return [output1, output2];
  return [output1, output2, hash.hmac(tempKey, output2, BYTE_3)];
}

export class SymmetricState {
  private ck: Uint8Array;
  private h: Uint8Array;
  private readonly cs: CipherState;
  private finished = false;

  /** InitializeSymmetric(protocol_name). */
  constructor(
    private readonly hash: HashFunctions,
    private readonly cipher: CipherFunctions,
    protocolName: string,
  ) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= hash.HASHLEN) {
      this.h = new Uint8Array(hash.HASHLEN);
      this.h.set(name);
    } else {
      this.h = hash.hash(name);
    }
    this.ck = this.h.slice();
    this.cs = new CipherState(cipher);
  }

  mixKey(inputKeyMaterial: Uint8Array): void {
    this.live();
    const [ck, tempK] = hkdf(this.hash, this.ck, inputKeyMaterial, 2) as [Uint8Array, Uint8Array];
    this.ck = ck;
    this.cs.initializeKey(truncateKey(tempK));
  }

  mixHash(data: Uint8Array): void {
    this.live();
    this.h = this.hash.hash(this.h, data);
  }

  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    this.live();
    const [ck, tempH, tempK] = hkdf(this.hash, this.ck, inputKeyMaterial, 3) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    this.ck = ck;
    this.mixHash(tempH);
    this.cs.initializeKey(truncateKey(tempK));
  }

  get handshakeHash(): Uint8Array {
    return this.h;
  }

  hasKey(): boolean {
    return this.cs.hasKey();
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    this.live();
    const ciphertext = this.cs.encryptWithAd(this.h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** Throws ProtocolError("decrypt") on a forged ciphertext; h is then left unchanged. */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    this.live();
    const plaintext = this.cs.decryptWithAd(this.h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Returns [c1, c2]: c1 encrypts initiator -> responder, c2 the other way. */
  split(): [CipherState, CipherState] {
    this.live();
    const [tempK1, tempK2] = hkdf(this.hash, this.ck, EMPTY, 2) as [Uint8Array, Uint8Array];
    const c1 = new CipherState(this.cipher);
    const c2 = new CipherState(this.cipher);
    c1.initializeKey(truncateKey(tempK1));
    c2.initializeKey(truncateKey(tempK2));
    this.finished = true;
    this.ck.fill(0);
    this.cs.clear();
    return [c1, c2];
  }

  private live(): void {
    assert(!this.finished, "SymmetricState used after split()");
  }
}

/** HASHLEN 64 hashes give 64-byte outputs; cipher keys are their first 32 bytes (§5.2). */
function truncateKey(k: Uint8Array): Uint8Array {
  return k.length === 32 ? k : k.slice(0, 32);
}
