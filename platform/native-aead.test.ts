/**
 * The native AEAD selection in Bun: native AES-GCM agrees with @noble and is chosen; Bun has no
 * native ChaCha20-Poly1305, so ChaChaPoly falls back to @noble; a native cipher that is missing
 * or disagrees at start-up is left out. The Node side (native ChaCha present) is
 * test/integration/node-aead.test.ts.
 */
import { expect, test } from "bun:test";
import type { CipherFunctions } from "../core/noise/crypto.ts";
import { aesGcmNoble, chachaPolyNoble } from "../core/noise/crypto-noble.ts";
import { makeResolver } from "../core/noise/suites.ts";
import { assertAgreement, assertTamperRefused } from "../test/helpers/aead-agreement.ts";
import {
  aesGcmNative,
  agreesWithReference,
  chachaPolyNative,
  checkedCiphers,
  NATIVE_CANDIDATES,
  nativeCiphers,
} from "./native-aead.ts";

test("native AES-GCM agrees with @noble on random keys, nonces, ad and plaintexts", () => {
  assertAgreement(aesGcmNative, aesGcmNoble, 300);
});

test("a tampered AES-GCM message is ProtocolError(decrypt) on the native and the @noble path", () => {
  assertTamperRefused([aesGcmNative, aesGcmNoble], 200);
});

test("Bun: AES-GCM is native, ChaChaPoly falls back to @noble (Bun has no native one)", () => {
  expect(typeof Bun).not.toBe("undefined");
  expect(() =>
    chachaPolyNative.encrypt(new Uint8Array(32), 0n, new Uint8Array(0), new Uint8Array(1)),
  ).toThrow();
  expect(nativeCiphers()).toEqual([aesGcmNative]);
  const resolver = makeResolver(nativeCiphers());
  expect(resolver.cipher("AESGCM")).toBe(aesGcmNative);
  expect(resolver.cipher("ChaChaPoly")).toBe(chachaPolyNoble);
});

/** A native cipher that is wrong in one way; the selection must leave it out. */
function broken(kind: "missing" | "ciphertext" | "accepts-forgery" | "misnamed"): CipherFunctions {
  return {
    name: kind === "misnamed" ? "ChaChaPoly" : "AESGCM",
    encrypt(k, n, ad, pt) {
      if (kind === "missing") throw new Error("Unknown cipher");
      const out = aesGcmNative.encrypt(k, n, ad, pt);
      if (kind === "ciphertext" && n > 2n ** 32n) out[3]! ^= 1; // wrong only for high nonces
      return out;
    },
    decrypt(k, n, ad, ct) {
      if (kind === "missing") throw new Error("Unknown cipher");
      // CTR mode is its own inverse: this opens the body without looking at the tag.
      if (kind === "accepts-forgery")
        return aesGcmNoble.encrypt(k, n, ad, ct.subarray(0, -16)).subarray(0, -16);
      return aesGcmNative.decrypt(k, n, ad, ct);
    },
  };
}

test("a native cipher that is missing or disagrees at start-up is left out; the rest stay", () => {
  for (const kind of ["missing", "ciphertext", "accepts-forgery", "misnamed"] as const) {
    expect(agreesWithReference(broken(kind), aesGcmNoble)).toBe(false);
    const chosen = checkedCiphers([[broken(kind), aesGcmNoble], ...NATIVE_CANDIDATES]);
    expect(chosen).toEqual(nativeCiphers());
    expect(makeResolver(checkedCiphers([[broken(kind), aesGcmNoble]])).cipher("AESGCM")).toBe(aesGcmNoble);
  }
  expect(agreesWithReference(aesGcmNative, aesGcmNoble)).toBe(true);
});
