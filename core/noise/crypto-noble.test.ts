/**
 * Unit tests of the portable crypto functions (crypto-noble.ts). Their outputs are checked
 * against the published vectors in test/vectors/noise-vectors.test.ts; here: the properties the
 * Noise objects rely on.
 */
import { describe, expect, test } from "bun:test";
import {
  aesGcmNoble,
  blake2bHash,
  blake2sHash,
  chachaPolyNoble,
  dh25519,
  sha256Hash,
  sha512Hash,
} from "./crypto-noble.ts";

describe("crypto-noble", () => {
  test("dh25519: both sides agree; a low-order public key throws instead of giving zeros", () => {
    const [a, b] = [dh25519.generateKeyPair(), dh25519.generateKeyPair()];
    expect(dh25519.dh(a.privateKey, b.publicKey)).toEqual(dh25519.dh(b.privateKey, a.publicKey));
    expect(dh25519.keyPairFromPrivate(a.privateKey).publicKey).toEqual(a.publicKey);
    expect(() => dh25519.dh(a.privateKey, new Uint8Array(32))).toThrow();
  });

  test("hash and hmac over parts equal the same over the joined input, HASHLEN bytes long", () => {
    for (const h of [blake2sHash, blake2bHash, sha256Hash, sha512Hash]) {
      expect(h.hash(Uint8Array.of(1), Uint8Array.of(2, 3))).toEqual(h.hash(Uint8Array.of(1, 2, 3)));
      const key = new Uint8Array(h.HASHLEN).fill(5);
      expect(h.hmac(key, Uint8Array.of(1), Uint8Array.of(2))).toEqual(h.hmac(key, Uint8Array.of(1, 2)));
      expect(h.hash(new Uint8Array(0)).length).toBe(h.HASHLEN);
    }
  });

  test("the AEADs add a 16-byte tag and refuse another nonce or another ad", () => {
    const k = new Uint8Array(32).fill(3);
    const ad = Uint8Array.of(1);
    for (const c of [chachaPolyNoble, aesGcmNoble]) {
      const sealed = c.encrypt(k, 7n, ad, Uint8Array.of(1, 2, 3));
      expect(sealed.length).toBe(3 + 16);
      expect(c.decrypt(k, 7n, ad, sealed)).toEqual(Uint8Array.of(1, 2, 3));
      expect(() => c.decrypt(k, 8n, ad, sealed)).toThrow();
      expect(() => c.decrypt(k, 7n, new Uint8Array(0), sealed)).toThrow();
    }
  });
});
