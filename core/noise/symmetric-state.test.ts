/**
 * Unit tests of SymmetricState (symmetric-state.ts), driven by hand through the initiator's
 * side of XX and XXpsk3 with the keys of cacophony's vectors (shared/vectors/noise/
 * required-cacophony.json): every mixHash, mixKey, mixKeyAndHash, encryptAndHash and
 * decryptAndHash of the pattern, then split(), must reproduce the vector's messages and h. No
 * HandshakeState is involved, so a fault shows here in the function that has it.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NoiseVector } from "../../test/vectors/noise-vectors.ts";
import { AssertionError } from "../errors.ts";
import { blake2sHash, chachaPolyNoble, dh25519 } from "./crypto-noble.ts";
import { hkdf, SymmetricState } from "./symmetric-state.ts";

const VECTORS = join(import.meta.dir, "../../../shared/vectors/noise/required-cacophony.json");
const vectors = (JSON.parse(readFileSync(VECTORS, "utf8")) as { vectors: NoiseVector[] }).vectors;
const vector = (name: string) => vectors.find((v) => v.protocol_name === name)!;
const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const EMPTY = new Uint8Array(0);

/** The initiator of XX (with psk3 when `psk`) by hand; returns what it sent, read and derived. */
function xxInitiator(v: NoiseVector, psk: boolean) {
  const ss = new SymmetricState(blake2sHash, chachaPolyNoble, v.protocol_name);
  const s = dh25519.keyPairFromPrivate(hex(v.init_static!));
  const e = dh25519.keyPairFromPrivate(hex(v.init_ephemeral));
  const m = v.messages;
  ss.mixHash(hex(v.init_prologue));
  // -> e
  ss.mixHash(e.publicKey);
  if (psk) ss.mixKey(e.publicKey); // psk handshakes also key on e (spec §9.2)
  const msg1 = toHex(e.publicKey) + toHex(ss.encryptAndHash(hex(m[0]!.payload)));
  // <- e, ee, s, es
  const msg2 = hex(m[1]!.ciphertext);
  const re = msg2.subarray(0, 32);
  ss.mixHash(re);
  if (psk) ss.mixKey(re);
  ss.mixKey(dh25519.dh(e.privateKey, re));
  const rs = ss.decryptAndHash(msg2.subarray(32, 80));
  ss.mixKey(dh25519.dh(e.privateKey, rs));
  const payload2 = toHex(ss.decryptAndHash(msg2.subarray(80)));
  // -> s, se [, psk]
  const sealedS = ss.encryptAndHash(s.publicKey);
  ss.mixKey(dh25519.dh(s.privateKey, re));
  if (psk) ss.mixKeyAndHash(hex(v.init_psks![0]!));
  const msg3 = toHex(sealedS) + toHex(ss.encryptAndHash(hex(m[2]!.payload)));
  const h = toHex(ss.handshakeHash);
  return { ss, msg1, payload2, rs: toHex(rs), msg3, h, split: ss.split() };
}

describe("SymmetricState on cacophony's XX and XXpsk3 (25519_ChaChaPoly_BLAKE2s)", () => {
  for (const [name, psk] of [
    ["Noise_XX_25519_ChaChaPoly_BLAKE2s", false],
    ["Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s", true],
  ] as const) {
    test(`${name}: each message, the responder's static key, h, and the split keys match the vector`, () => {
      const v = vector(name);
      const r = xxInitiator(v, psk);
      expect(r.msg1).toBe(v.messages[0]!.ciphertext);
      expect(r.payload2).toBe(v.messages[1]!.payload);
      expect(r.rs).toBe(toHex(dh25519.keyPairFromPrivate(hex(v.resp_static!)).publicKey));
      expect(r.msg3).toBe(v.messages[2]!.ciphertext);
      expect(r.h).toBe(v.handshake_hash!);
      // c1 encrypts initiator -> responder (even messages), c2 the other way.
      const [c1, c2] = r.split;
      for (const [i, message] of v.messages.entries()) {
        if (i < 3) continue;
        if (i % 2 === 0)
          expect(toHex(c1.encryptWithAd(EMPTY, hex(message.payload)))).toBe(message.ciphertext);
        else expect(toHex(c2.decryptWithAd(EMPTY, hex(message.ciphertext)))).toBe(message.payload);
      }
    });
  }

  test("a protocol name up to HASHLEN is h padded with zeros; a longer one is hashed", () => {
    const short = "Noise_XX_25519_AESGCM_BLAKE2s"; // 29 bytes
    const padded = new Uint8Array(32);
    padded.set(new TextEncoder().encode(short));
    expect(new SymmetricState(blake2sHash, chachaPolyNoble, short).handshakeHash).toEqual(padded);
    const long = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s"; // 37 bytes
    expect(new SymmetricState(blake2sHash, chachaPolyNoble, long).handshakeHash).toEqual(
      blake2sHash.hash(new TextEncoder().encode(long)),
    );
  });

  test("before any mixKey, encryptAndHash passes the plaintext through and still mixes it into h", () => {
    const ss = new SymmetricState(blake2sHash, chachaPolyNoble, "Noise_NN_25519_ChaChaPoly_BLAKE2s");
    const h0 = ss.handshakeHash;
    expect(ss.hasKey()).toBe(false);
    expect(ss.encryptAndHash(Uint8Array.of(1, 2))).toEqual(Uint8Array.of(1, 2));
    expect(ss.handshakeHash).toEqual(blake2sHash.hash(h0, Uint8Array.of(1, 2)));
  });

  test("a forged ciphertext is ProtocolError decrypt and leaves h unchanged", () => {
    const [a, b] = [0, 1].map(() => new SymmetricState(blake2sHash, chachaPolyNoble, "Noise_NN"));
    for (const ss of [a!, b!]) ss.mixKey(new Uint8Array(32).fill(4));
    const sealed = a!.encryptAndHash(Uint8Array.of(9));
    const forged = sealed.slice();
    forged[0]! ^= 1;
    const h = b!.handshakeHash;
    expect(() => b!.decryptAndHash(forged)).toThrow(expect.objectContaining({ code: "decrypt" }));
    expect(b!.handshakeHash).toEqual(h);
    expect(b!.decryptAndHash(sealed)).toEqual(Uint8Array.of(9)); // nothing moved: the real one still reads
    expect(b!.handshakeHash).toEqual(a!.handshakeHash);
  });

  test("after split() the state refuses further use (assert)", () => {
    const ss = new SymmetricState(blake2sHash, chachaPolyNoble, "Noise_NN");
    ss.split();
    expect(() => ss.mixHash(EMPTY)).toThrow(AssertionError);
    expect(() => ss.mixKey(EMPTY)).toThrow(AssertionError);
    expect(() => ss.split()).toThrow(AssertionError);
  });

  test("hkdf gives 2 or 3 HASHLEN outputs, the first two the same either way", () => {
    const ck = new Uint8Array(32).fill(1);
    const two = hkdf(blake2sHash, ck, Uint8Array.of(2), 2);
    const three = hkdf(blake2sHash, ck, Uint8Array.of(2), 3);
    expect(two.map((o) => o.length)).toEqual([32, 32]);
    expect(three.slice(0, 2)).toEqual(two);
    expect(new Set(three.map(toHex)).size).toBe(3);
  });
});
