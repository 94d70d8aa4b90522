/**
 * Unit tests of the crypto resolver (suites.ts): injected native implementations win by name,
 * unknown names resolve to null, never to a substitute.
 */
import { describe, expect, test } from "bun:test";
import type { CipherFunctions, DhFunctions } from "./crypto.ts";
import { aesGcmNoble, blake2sHash, chachaPolyNoble, dh25519 } from "./crypto-noble.ts";
import { LINK_SUITES, makeResolver, resolveLinkSuite, resolveSuite } from "./suites.ts";

describe("makeResolver", () => {
  test("resolves the portable implementations by their Noise names", () => {
    const r = makeResolver();
    expect(resolveSuite(r, "25519", "ChaChaPoly", "BLAKE2s")).toEqual({
      dh: dh25519,
      cipher: chachaPolyNoble,
      hash: blake2sHash,
    });
    expect(r.cipher("AESGCM")).toBe(aesGcmNoble);
    for (const h of ["BLAKE2b", "SHA256", "SHA512"]) expect(r.hash(h)?.name).toBe(h);
  });

  test("a native cipher or DH of the same name takes precedence; others are untouched", () => {
    const nativeAes: CipherFunctions = { ...aesGcmNoble };
    const nativeDh: DhFunctions = { ...dh25519 };
    const r = makeResolver([nativeAes], nativeDh);
    expect(r.cipher("AESGCM")).toBe(nativeAes);
    expect(r.cipher("ChaChaPoly")).toBe(chachaPolyNoble);
    expect(r.dh("25519")).toBe(nativeDh);
  });

  test("unknown names are null, and a suite with any unknown part is null", () => {
    const r = makeResolver();
    expect([r.dh("448"), r.cipher("AES256"), r.hash("MD5")]).toEqual([null, null, null]);
    expect(resolveSuite(r, "448", "ChaChaPoly", "BLAKE2s")).toBeNull();
    expect(resolveSuite(r, "25519", "ChaChaPoly", "BLAKE3")).toBeNull();
  });

  test("both link suites resolve", () => {
    for (const name of LINK_SUITES) expect(resolveLinkSuite(makeResolver(), name).hash).toBe(blake2sHash);
  });
});
