/**
 * Resolves Noise crypto names to implementations (like snow's CryptoResolver), preferring an
 * injected native AEAD (platform/native-aead.ts) over the portable @noble one.
 * Must never: silently substitute one algorithm for another; unknown names give null.
 */
import { assert } from "../errors.ts";
import type { CipherFunctions, DhFunctions, HashFunctions, NoiseSuite } from "./crypto.ts";
import {
  aesGcmNoble,
  blake2bHash,
  blake2sHash,
  chachaPolyNoble,
  dh25519,
  sha256Hash,
  sha512Hash,
} from "./crypto-noble.ts";

/** The two suites the link negotiates between (DESIGN.md "The link", step 3). */
export const LINK_SUITES = ["25519_ChaChaPoly_BLAKE2s", "25519_AESGCM_BLAKE2s"] as const;
export type LinkSuiteName = (typeof LINK_SUITES)[number];

export interface CryptoResolver {
  dh(name: string): DhFunctions | null;
  cipher(name: string): CipherFunctions | null;
  hash(name: string): HashFunctions | null;
}

const DH: Record<string, DhFunctions> = { "25519": dh25519 };
const CIPHERS: Record<string, CipherFunctions> = { ChaChaPoly: chachaPolyNoble, AESGCM: aesGcmNoble };
const HASHES: Record<string, HashFunctions> = {
  BLAKE2s: blake2sHash,
  BLAKE2b: blake2bHash,
  SHA256: sha256Hash,
  SHA512: sha512Hash,
};

/** A resolver over @noble, with optional faster native implementations taking precedence. */
export function makeResolver(
  nativeCiphers: readonly CipherFunctions[] = [],
  nativeDh: DhFunctions | null = null,
): CryptoResolver {
  return {
    dh: (name) => (nativeDh && nativeDh.name === name ? nativeDh : (DH[name] ?? null)),
    cipher: (name) => nativeCiphers.find((c) => c.name === name) ?? CIPHERS[name] ?? null,
    hash: (name) => HASHES[name] ?? null,
  };
}

export function resolveSuite(
  resolver: CryptoResolver,
  dh: string,
  cipher: string,
  hash: string,
): NoiseSuite | null {
  const d = resolver.dh(dh);
  const c = resolver.cipher(cipher);
  const h = resolver.hash(hash);
  return d && c && h ? { dh: d, cipher: c, hash: h } : null;
}

/** `25519_ChaChaPoly_BLAKE2s` -> suite. */
export function resolveLinkSuite(resolver: CryptoResolver, name: LinkSuiteName): NoiseSuite {
  const [dh, cipher, hash] = name.split("_") as [string, string, string];
  const suite = resolveSuite(resolver, dh, cipher, hash);
  // Every link suite is built from primitives every resolver has: a miss is our bug.
  assert(suite !== null, `link suite ${name} not resolvable`);
  return suite;
}
