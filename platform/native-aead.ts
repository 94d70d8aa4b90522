/**
 * Native AES-256-GCM for the Noise `AESGCM` cipher (spec §12.4) through `node:crypto`, which Bun
 * and Node both implement with OpenSSL/BoringSSL (GB/s with AES-NI). Bun has no native
 * ChaCha20-Poly1305 (oven-sh/bun#8072), so ChaChaPoly stays on @noble there.
 * Must never: return plaintext whose tag did not verify.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { equalBytes } from "../core/bytes.ts";
import type { CipherFunctions } from "../core/noise/crypto.ts";
import { aesgcmNonce, SEAL_HEADROOM } from "../core/noise/crypto.ts";
import { aesGcmNoble } from "../core/noise/crypto-noble.ts";

const TAG = 16;

export const aesGcmNative: CipherFunctions = {
  name: "AESGCM",
  encrypt(k, n, ad, plaintext) {
    const cipher = createCipheriv("aes-256-gcm", k, aesgcmNonce(n));
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
    const decipher = createDecipheriv("aes-256-gcm", k, aesgcmNonce(n));
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

let cached: CipherFunctions[] | null = null;

/**
 * The native ciphers this runtime offers, each cross-checked once against @noble (same output,
 * and a forged tag refused); a runtime whose native AES-GCM fails that gets none.
 */
export function nativeCiphers(): CipherFunctions[] {
  if (cached) return cached;
  cached = [];
  try {
    const k = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    const ad = Uint8Array.of(1, 2, 3);
    const pt = Uint8Array.from({ length: 100 }, (_, i) => i);
    const n = 2n ** 40n + 3n;
    const sealed = aesGcmNative.encrypt(k, n, ad, pt);
    const reference = aesGcmNoble.encrypt(k, n, ad, pt);
    const opened = aesGcmNative.decrypt(k, n, ad, reference);
    sealed[0]! ^= 1;
    let forgedRefused = false;
    try {
      aesGcmNative.decrypt(k, n, ad, sealed);
    } catch {
      forgedRefused = true;
    }
    sealed[0]! ^= 1;
    if (equalBytes(sealed, reference) && equalBytes(opened, pt) && forgedRefused) cached.push(aesGcmNative);
  } catch {
    // No native AES-GCM: @noble's stays in use.
  }
  return cached;
}
