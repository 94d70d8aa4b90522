/**
 * Native X25519 for the Noise `25519` DH functions through node:crypto (OpenSSL/BoringSSL in
 * Bun and Node): ~10x faster than @noble here (bench/README.md "Handshake"), and a handshake
 * costs ~10 of them. Cross-checked once against @noble; a runtime that fails the check keeps
 * @noble. Raw keys travel as PKCS#8/SPKI DER with the fixed RFC 8410 prefixes.
 * Must never: return a shared secret for a low-order point (OpenSSL refuses the all-zero result,
 * which the handshake treats as failure, as with @noble).
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from "node:crypto";
import { equalBytes } from "../core/bytes.ts";
import type { DhFunctions, KeyPair } from "../core/noise/crypto.ts";
import { dh25519 } from "../core/noise/crypto-noble.ts";

const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

const privateKeyObject = (priv: Uint8Array) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, priv]), format: "der", type: "pkcs8" });
const publicKeyObject = (pub: Uint8Array) =>
  createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: "der", type: "spki" });
const rawPublic = (key: ReturnType<typeof createPublicKey>) =>
  new Uint8Array(key.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length));

export const dh25519Native: DhFunctions = {
  name: "25519",
  DHLEN: 32,
  generateKeyPair(): KeyPair {
    const { privateKey, publicKey } = generateKeyPairSync("x25519");
    const der = privateKey.export({ format: "der", type: "pkcs8" });
    return { privateKey: new Uint8Array(der.subarray(PKCS8_PREFIX.length)), publicKey: rawPublic(publicKey) };
  },
  keyPairFromPrivate(privateKey) {
    return { privateKey, publicKey: rawPublic(createPublicKey(privateKeyObject(privateKey))) };
  },
  dh(privateKey, publicKey) {
    if (publicKey.length !== 32) throw new Error("bad X25519 public key length");
    return new Uint8Array(
      diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: publicKeyObject(publicKey) }),
    );
  },
};

let checked: DhFunctions | null | undefined;

/** The native X25519 if it agrees with @noble on a fresh exchange, else null. */
export function nativeDh(): DhFunctions | null {
  if (checked !== undefined) return checked;
  try {
    const a = dh25519Native.generateKeyPair();
    const b = dh25519.generateKeyPair();
    const samePublic = equalBytes(dh25519.keyPairFromPrivate(a.privateKey).publicKey, a.publicKey);
    const sameSecret = equalBytes(
      dh25519Native.dh(a.privateKey, b.publicKey),
      dh25519.dh(b.privateKey, a.publicKey),
    );
    checked = samePublic && sameSecret ? dh25519Native : null;
  } catch {
    checked = null;
  }
  return checked;
}
