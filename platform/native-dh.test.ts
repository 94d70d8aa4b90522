import { expect, test } from "bun:test";
import { dh25519 } from "../core/noise/crypto-noble.ts";
import { dh25519Native, nativeDh } from "./native-dh.ts";

test("native X25519 agrees with @noble: public keys and shared secrets", () => {
  for (let i = 0; i < 20; i++) {
    const a = dh25519Native.generateKeyPair();
    const b = dh25519.generateKeyPair();
    expect(dh25519.keyPairFromPrivate(a.privateKey).publicKey).toEqual(a.publicKey);
    expect(dh25519Native.keyPairFromPrivate(b.privateKey).publicKey).toEqual(b.publicKey);
    expect(dh25519Native.dh(a.privateKey, b.publicKey)).toEqual(dh25519.dh(b.privateKey, a.publicKey));
  }
  expect(nativeDh()).toBe(dh25519Native);
});

test("a low-order public key is refused, as with @noble", () => {
  const a = dh25519Native.generateKeyPair();
  expect(() => dh25519Native.dh(a.privateKey, new Uint8Array(32))).toThrow();
  expect(() => dh25519.dh(a.privateKey, new Uint8Array(32))).toThrow();
});
