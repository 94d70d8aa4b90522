import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../errors.ts";
import { CipherState } from "./cipher-state.ts";
import { aesgcmNonce, chachaNonce } from "./crypto.ts";
import { aesGcmNoble, chachaPolyNoble } from "./crypto-noble.ts";

const key = new Uint8Array(32).fill(9);
const empty = new Uint8Array(0);

describe("nonce encoding", () => {
  test("all 64 bits count: 2^32 differs from 0 (the noise-handshake bug)", () => {
    expect(chachaNonce(2n ** 32n)).not.toEqual(chachaNonce(0n));
    expect(aesgcmNonce(2n ** 32n)).not.toEqual(aesgcmNonce(0n));
  });
  test("ChaChaPoly is little-endian, AESGCM big-endian, after 4 zero bytes", () => {
    expect([...chachaNonce(0x0102030405060708n)]).toEqual([0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect([...aesgcmNonce(0x0102030405060708n)]).toEqual([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

for (const cipher of [chachaPolyNoble, aesGcmNoble]) {
  describe(`CipherState ${cipher.name}`, () => {
    test("passes plaintext through while unkeyed", () => {
      const cs = new CipherState(cipher);
      expect(cs.encryptWithAd(empty, Uint8Array.of(1, 2))).toEqual(Uint8Array.of(1, 2));
    });

    test("n advances only after a successful decryption", () => {
      const tx = new CipherState(cipher);
      const rx = new CipherState(cipher);
      tx.initializeKey(key);
      rx.initializeKey(key);
      const sealed = tx.encryptWithAd(empty, Uint8Array.of(5));
      const forged = sealed.slice();
      forged[0]! ^= 1;
      expect(() => rx.decryptWithAd(empty, forged)).toThrow(ProtocolError);
      expect(rx.nonce).toBe(0n);
      expect(rx.decryptWithAd(empty, sealed)).toEqual(Uint8Array.of(5));
      expect(rx.nonce).toBe(1n);
    });

    test("refuses to go past its limit instead of wrapping", () => {
      const cs = new CipherState(cipher, 3n);
      cs.initializeKey(key);
      cs.setNonce(2n);
      cs.encryptWithAd(empty, empty);
      expect(() => cs.encryptWithAd(empty, empty)).toThrow(new ProtocolError("nonce-exhausted"));
    });

    test("the same plaintext under successive nonces gives different ciphertexts", () => {
      const cs = new CipherState(cipher);
      cs.initializeKey(key);
      expect(cs.encryptWithAd(empty, Uint8Array.of(1))).not.toEqual(
        cs.encryptWithAd(empty, Uint8Array.of(1)),
      );
    });

    test("rekey changes the key and keeps n", () => {
      const [a, b, stale] = [new CipherState(cipher), new CipherState(cipher), new CipherState(cipher)];
      for (const cs of [a, b, stale]) {
        cs.initializeKey(key);
        cs.setNonce(4n);
      }
      a.rekey();
      b.rekey();
      const sealed = a.encryptWithAd(empty, Uint8Array.of(3));
      expect(a.nonce).toBe(5n);
      expect(() => stale.decryptWithAd(empty, sealed)).toThrow(ProtocolError);
      expect(b.decryptWithAd(empty, sealed)).toEqual(Uint8Array.of(3));
    });
  });
}
