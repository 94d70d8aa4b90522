/**
 * Portable implementations of the Noise crypto functions on the audited @noble libraries.
 * Used everywhere unless a runtime offers a faster native AEAD (see platform/native-aead.ts).
 * Must never: reuse a (key, nonce) pair — nonces come only from CipherState.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { blake2b, blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import {
  aesgcmNonce,
  type CipherFunctions,
  chachaNonce,
  type DhFunctions,
  type HashFunctions,
} from "./crypto.ts";

export const dh25519: DhFunctions = {
  name: "25519",
  DHLEN: 32,
  generateKeyPair() {
    const privateKey = x25519.utils.randomSecretKey();
    return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
  },
  keyPairFromPrivate(privateKey) {
    return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
  },
  // @noble throws on low-order points instead of returning zeros (spec §12.1 allows either).
  dh: (privateKey, publicKey) => x25519.getSharedSecret(privateKey, publicKey),
};

export const chachaPolyNoble: CipherFunctions = {
  name: "ChaChaPoly",
  encrypt: (k, n, ad, pt) => chacha20poly1305(k, chachaNonce(n), ad).encrypt(pt),
  decrypt: (k, n, ad, ct) => chacha20poly1305(k, chachaNonce(n), ad).decrypt(ct),
};

export const aesGcmNoble: CipherFunctions = {
  name: "AESGCM",
  encrypt: (k, n, ad, pt) => gcm(k, aesgcmNonce(n), ad).encrypt(pt),
  decrypt: (k, n, ad, ct) => gcm(k, aesgcmNonce(n), ad).decrypt(ct),
};

type NobleHash = typeof sha256 | typeof blake2s | typeof sha512 | typeof blake2b;

function hashFunctions(name: string, fn: NobleHash, HASHLEN: number, BLOCKLEN: number): HashFunctions {
  return {
    name,
    HASHLEN,
    BLOCKLEN,
    hash(...parts) {
      const h = fn.create();
      for (const p of parts) h.update(p);
      return h.digest();
    },
    hmac(key, ...parts) {
      const m = hmac.create(fn, key);
      for (const p of parts) m.update(p);
      return m.digest();
    },
  };
}

export const blake2sHash = hashFunctions("BLAKE2s", blake2s, 32, 64);
export const blake2bHash = hashFunctions("BLAKE2b", blake2b, 64, 128);
export const sha256Hash = hashFunctions("SHA256", sha256, 32, 64);
export const sha512Hash = hashFunctions("SHA512", sha512, 64, 128);
