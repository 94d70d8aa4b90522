/**
 * Unit tests of CipherState (cipher-state.ts) with both AEADs: n moves only after a successful
 * operation, never wraps, and stops at NONCE_REFUSE_AT; rekey changes k and keeps n.
 */
import { describe, expect, test } from "bun:test";
import { AssertionError, ProtocolError } from "../errors.ts";
import { NONCE_REFUSE_AT } from "../wire/limits.ts";
import { CipherState } from "./cipher-state.ts";
import { aesGcmNoble, chachaPolyNoble } from "./crypto-noble.ts";

const key = new Uint8Array(32).fill(9);
const empty = new Uint8Array(0);

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

    test("the default limit is NONCE_REFUSE_AT (2^60): the nonce below it works, then both ways refuse", () => {
      const [tx, rx] = [new CipherState(cipher), new CipherState(cipher)];
      for (const cs of [tx, rx]) {
        cs.initializeKey(key);
        cs.setNonce(NONCE_REFUSE_AT - 1n);
      }
      const sealed = tx.encryptWithAd(empty, Uint8Array.of(1));
      expect(rx.decryptWithAd(empty, sealed)).toEqual(Uint8Array.of(1));
      expect(() => tx.encryptWithAd(empty, empty)).toThrow(new ProtocolError("nonce-exhausted"));
      expect(() => rx.decryptWithAd(empty, sealed)).toThrow(new ProtocolError("nonce-exhausted"));
      expect([tx.nonce, rx.nonce]).toEqual([NONCE_REFUSE_AT, NONCE_REFUSE_AT]);
    });

    test("setNonce refuses the reserved 2^64-1; rekey without a key is our bug", () => {
      const cs = new CipherState(cipher);
      expect(() => cs.setNonce(2n ** 64n - 1n)).toThrow(AssertionError);
      expect(() => cs.setNonce(-1n)).toThrow(AssertionError);
      expect(() => cs.rekey()).toThrow(AssertionError);
    });

    test("initializeKey starts n at 0; clear forgets the key", () => {
      const cs = new CipherState(cipher);
      cs.initializeKey(key);
      cs.encryptWithAd(empty, empty);
      cs.initializeKey(new Uint8Array(32).fill(1));
      expect(cs.nonce).toBe(0n);
      cs.clear();
      expect(cs.hasKey()).toBe(false);
      expect(cs.encryptWithAd(empty, Uint8Array.of(4))).toEqual(Uint8Array.of(4));
    });
  });
}
