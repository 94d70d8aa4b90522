/**
 * Native AEADs for the Noise ciphers through `node:crypto`: AES-256-GCM for `AESGCM` (spec §12.4)
 * in Bun and Node, ChaCha20-Poly1305 for `ChaChaPoly` (§12.3) where the runtime has one — Node
 * (OpenSSL) does, Bun does not (oven-sh/bun#8072), so ChaChaPoly stays on @noble there. The
 * Armory runs the agent as a Node bundle on a core without AES instructions, where ChaChaPoly is
 * the suite it ranks first, so this is its link's cipher.
 * Each native cipher is cross-checked once against @noble before use (same ciphertext, same
 * plaintext back, a forged tag refused); one that is missing or disagrees is left out and the
 * resolver falls back to @noble for that name.
 * Must never: return plaintext whose tag did not verify; offer a cipher that failed the check.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { equalBytes } from "../core/bytes.ts";
import type { CipherFunctions } from "../core/noise/crypto.ts";
import { aesgcmNonce, chachaNonce, SEAL_HEADROOM } from "../core/noise/crypto.ts";
import { aesGcmNoble, chachaPolyNoble } from "../core/noise/crypto-noble.ts";

const TAG = 16;

/** A Noise cipher over one node:crypto AEAD; both algorithms take a 12-byte nonce, 16-byte tag. */
function nodeAead(
  name: CipherFunctions["name"],
  algorithm: "aes-256-gcm" | "chacha20-poly1305",
  nonceOf: (n: bigint) => Uint8Array,
): CipherFunctions {
  // The two literal overloads of createCipheriv differ only in the algorithm's type.
  const options = { authTagLength: TAG };
  const seal = (k: Uint8Array, n: bigint) =>
    algorithm === "aes-256-gcm"
      ? createCipheriv(algorithm, k, nonceOf(n), options)
      : createCipheriv(algorithm, k, nonceOf(n), options);
  const open = (k: Uint8Array, n: bigint) =>
    algorithm === "aes-256-gcm"
      ? createDecipheriv(algorithm, k, nonceOf(n), options)
      : createDecipheriv(algorithm, k, nonceOf(n), options);
  return {
    name,
    encrypt(k, n, ad, plaintext) {
      const cipher = seal(k, n);
      cipher.setAAD(ad);
      // Headroom before the ciphertext: the TCP framer writes its length there, no extra copy.
      const out = new Uint8Array(SEAL_HEADROOM + plaintext.length + TAG).subarray(SEAL_HEADROOM);
      const body = cipher.update(plaintext);
      out.set(body, 0);
      const final = cipher.final();
      out.set(final, body.length);
      out.set(cipher.getAuthTag(), plaintext.length);
      return out;
    },
    decrypt(k, n, ad, ciphertext) {
      if (ciphertext.length < TAG) throw new Error("short ciphertext");
      const decipher = open(k, n);
      decipher.setAAD(ad);
      decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG));
      const body = decipher.update(ciphertext.subarray(0, ciphertext.length - TAG));
      const final = decipher.final(); // throws when the tag does not verify
      if (final.length === 0) return new Uint8Array(body.buffer, body.byteOffset, body.length);
      const out = new Uint8Array(body.length + final.length);
      out.set(body, 0);
      out.set(final, body.length);
      return out;
    },
  };
}

export const aesGcmNative = nodeAead("AESGCM", "aes-256-gcm", aesgcmNonce);
export const chachaPolyNative = nodeAead("ChaChaPoly", "chacha20-poly1305", chachaNonce);

/** A native cipher and the @noble one it must agree with. */
export type CipherCandidate = readonly [native: CipherFunctions, reference: CipherFunctions];

export const NATIVE_CANDIDATES: readonly CipherCandidate[] = [
  [aesGcmNative, aesGcmNoble],
  [chachaPolyNative, chachaPolyNoble],
];

/**
 * True when `native` seals exactly as `reference` does (on a nonce above 2^32, so both nonce
 * halves count), opens the reference's ciphertext, and refuses a flipped ciphertext bit and a
 * flipped tag bit. False, never a throw, when it is missing (ERR_CRYPTO_UNKNOWN_CIPHER) or wrong.
 */
export function agreesWithReference(native: CipherFunctions, reference: CipherFunctions): boolean {
  try {
    if (native.name !== reference.name) return false;
    const k = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    const ad = Uint8Array.of(1, 2, 3);
    const pt = Uint8Array.from({ length: 100 }, (_, i) => i);
    const n = 2n ** 40n + 3n;
    const sealed = native.encrypt(k, n, ad, pt);
    const reference_ = reference.encrypt(k, n, ad, pt);
    if (!equalBytes(sealed, reference_)) return false;
    if (!equalBytes(native.decrypt(k, n, ad, reference_), pt)) return false;
    for (const at of [0, sealed.length - 1]) {
      const forged = sealed.slice();
      forged[at]! ^= 1;
      if (refusesNot(native, k, n, ad, forged)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

function refusesNot(c: CipherFunctions, k: Uint8Array, n: bigint, ad: Uint8Array, ct: Uint8Array): boolean {
  try {
    c.decrypt(k, n, ad, ct);
    return true;
  } catch {
    return false;
  }
}

/** The natives among `candidates` that pass agreesWithReference, in order. */
export function checkedCiphers(candidates: readonly CipherCandidate[]): CipherFunctions[] {
  return candidates.filter(([native, reference]) => agreesWithReference(native, reference)).map(([n]) => n);
}

let cached: CipherFunctions[] | null = null;

/** The native ciphers this runtime offers that passed the check, computed once per process. */
export function nativeCiphers(): CipherFunctions[] {
  cached ??= checkedCiphers(NATIVE_CANDIDATES);
  return cached;
}
