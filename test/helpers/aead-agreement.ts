/**
 * Checks that a native Noise cipher is interchangeable with its @noble reference, runnable in Bun
 * (platform/native-aead.test.ts) and in Node (test/integration/node-aead-peer.ts, where the
 * native ChaCha20-Poly1305 exists): random keys, nonces, ad and plaintexts seal to the same bytes
 * and open each other's output; a tampered tag or body is our typed ProtocolError("decrypt")
 * through CipherState, with the nonce unchanged, for both.
 * Each function throws (fast-check's report or an Error saying what differed) when a check fails.
 * Must never be imported by production code.
 */
import fc from "fast-check";
import { equalBytes } from "../../core/bytes.ts";
import { ProtocolError } from "../../core/errors.ts";
import { CipherState } from "../../core/noise/cipher-state.ts";
import type { CipherFunctions } from "../../core/noise/crypto.ts";

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
// Nonces across the whole 64-bit range but below 2^64-1 (reserved for rekey, spec §5.1).
const nonce = fc.bigInt({ min: 0n, max: 2n ** 64n - 2n });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength });

/** Native and reference agree on random inputs, both ways. */
export function assertAgreement(native: CipherFunctions, reference: CipherFunctions, numRuns: number): void {
  fc.assert(
    fc.property(key, nonce, bytes(64), bytes(4096), (k, n, ad, pt) => {
      const a = native.encrypt(k, n, ad, pt);
      const b = reference.encrypt(k, n, ad, pt);
      if (!equalBytes(a, b)) throw new Error(`${native.name}: ciphertexts differ`);
      if (!equalBytes(native.decrypt(k, n, ad, b), pt))
        throw new Error("native cannot open reference output");
      if (!equalBytes(reference.decrypt(k, n, ad, a), pt))
        throw new Error("reference cannot open native output");
    }),
    { numRuns },
  );
}

function typedRefusal(cipher: CipherFunctions, k: Uint8Array, ad: Uint8Array, forged: Uint8Array): void {
  const receiver = new CipherState(cipher);
  receiver.initializeKey(k);
  try {
    receiver.decryptWithAd(ad, forged);
  } catch (error) {
    if (!(error instanceof ProtocolError) || error.code !== "decrypt")
      throw new Error(`${cipher.name}: refused with ${String(error)}, not ProtocolError(decrypt)`);
    if (receiver.nonce !== 0n) throw new Error(`${cipher.name}: a refused message advanced the nonce`);
    return;
  }
  throw new Error(`${cipher.name}: a forged message was accepted`);
}

/**
 * A flipped bit anywhere (tag or body), or a ciphertext shorter than a tag, is refused by both as
 * ProtocolError("decrypt").
 */
export function assertTamperRefused(ciphers: readonly CipherFunctions[], numRuns: number): void {
  fc.assert(
    fc.property(
      key,
      bytes(64),
      bytes(1024),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (k, ad, pt, at, bit) => {
        const sender = new CipherState(ciphers[0]!);
        sender.initializeKey(k);
        const sealed = sender.encryptWithAd(ad, pt);
        const forged = sealed.slice();
        forged[at % forged.length]! ^= 1 << bit;
        const tagOnly = sealed.slice();
        tagOnly[tagOnly.length - 1]! ^= 0x80;
        for (const c of ciphers) {
          typedRefusal(c, k, ad, forged);
          typedRefusal(c, k, ad, tagOnly);
          typedRefusal(c, k, ad, sealed.subarray(0, 15));
        }
      },
    ),
    { numRuns },
  );
}
