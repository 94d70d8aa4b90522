/**
 * The 6-digit pairing code, by commit, then reveal (DESIGN.md "Pairing"; as Bluetooth numeric
 * comparison). In Noise_XX the host (initiator) sends the last handshake message, so:
 *
 *   msg 2   device -> host   payload carries commit = BLAKE2s(nonce_device)
 *   msg 3   host -> device   payload carries nonce_host (encrypted)
 *   then    device -> host   PAIR_REVEAL record: nonce_device (encrypted); the host checks it
 *                             against the commitment (a mismatch is ProtocolError
 *                             "pairing-commitment")
 *   code  = BLAKE2s(CODE_LABEL || h || nonce_device || nonce_host) mod 10^6
 *
 * A man in the middle must fix everything it sends on a leg (its msg 3 to the device, its
 * commitment to the host) before it learns the honest side's nonce, so each leg's code is one
 * random draw for it: one guess in 10^6 per attempt (docs/threat-model-pairing.md).
 * CODE_LABEL names version 2; the h-only code of version 1 is gone and never computed.
 * Must never: derive a code before both nonces are known, accept a reveal that does not open the
 * commitment, or reuse a nonce (each comes fresh from the CSPRNG).
 */

import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes } from "../bytes.ts";
import { assert, ProtocolError } from "../errors.ts";
import { blake2sHash } from "../noise/crypto-noble.ts";
import { PAIR_CODE_DIGITS, PAIR_CODE_MAX_FAILURES, PAIR_NONCE_BYTES } from "../wire/limits.ts";

const CODE_LABEL = new TextEncoder().encode("qubes-air pairing code v2 commit-reveal");
const MODULUS = 10n ** BigInt(PAIR_CODE_DIGITS);

/** A fresh nonce from the CSPRNG, one per side and attempt. */
export function freshNonce(): Uint8Array {
  return randomBytes(PAIR_NONCE_BYTES);
}

/** BLAKE2s(nonce): what the committing side (the device) sends in handshake message 2. */
export function commitTo(nonce: Uint8Array): Uint8Array {
  assert(nonce.length === PAIR_NONCE_BYTES, "pairing nonce must be 32 bytes");
  return blake2sHash.hash(nonce);
}

/** Checks a revealed nonce against the commitment received earlier; ProtocolError if it fails. */
export function checkReveal(commitment: Uint8Array, revealed: Uint8Array): void {
  if (revealed.length !== PAIR_NONCE_BYTES || !equalBytes(blake2sHash.hash(revealed), commitment)) {
    throw new ProtocolError("pairing-commitment");
  }
}

/**
 * The six digits both users compare: from the handshake hash h (which binds both static keys and
 * every handshake message) and both nonces, the committer's first.
 */
export function pairingCode(h: Uint8Array, committerNonce: Uint8Array, otherNonce: Uint8Array): string {
  assert(
    committerNonce.length === PAIR_NONCE_BYTES && otherNonce.length === PAIR_NONCE_BYTES,
    "pairing nonces must be 32 bytes",
  );
  const digest = blake2sHash.hash(CODE_LABEL, h, committerNonce, otherNonce);
  const n = new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0, false);
  // 2^64 mod 10^6 leaves a bias below 10^6 / 2^64 ~ 5e-14 per value: negligible.
  return (n % MODULUS).toString().padStart(PAIR_CODE_DIGITS, "0");
}

/** The words both ends use for the lock: the device's log and the host's `pair --code` error. */
export function lockedText(minutes: number): string {
  const unit = minutes === 1 ? "minute" : "minutes";
  return `code pairing locked for ${minutes} ${unit} after ${PAIR_CODE_MAX_FAILURES} failed attempts`;
}
