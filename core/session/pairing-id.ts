/**
 * The pairing id: what ties a reconnect to the pairing it belongs to (docs/threat-model.md
 * "Replay of a reconnect"). Both ends derive it from the pairing handshake's hash h, which binds
 * both static keys and that handshake's fresh ephemerals, so every pairing, also a re-pairing of
 * the same two keys, gets a new one without a message for it. Both store it with the pinned key;
 * every IK message 1 carries it (encrypted, core/session/messages.ts) and the device refuses one
 * whose id is not the one it recorded at the last pairing (core/session/handshake.ts).
 *
 * LEGACY_PAIRING_ID (all zeros) is what a pinned entry written before pairing ids existed has on
 * both ends; a derived id is never all zeros in practice (2^-128), and any re-pairing replaces it.
 * Must never: derive an id from anything but a completed pairing handshake's h.
 */
import { blake2sHash } from "../noise/crypto-noble.ts";
import { PAIRING_ID_BYTES } from "../wire/limits.ts";

const PAIRING_ID_LABEL = new TextEncoder().encode("qubes-air pairing id v1");

export const LEGACY_PAIRING_ID: Uint8Array = new Uint8Array(PAIRING_ID_BYTES);

export function pairingIdOf(handshakeHash: Uint8Array): Uint8Array {
  return blake2sHash.hash(PAIRING_ID_LABEL, handshakeHash).slice(0, PAIRING_ID_BYTES);
}

/** Hex text of an id, for the state files on either end. */
export function formatPairingId(id: Uint8Array): string {
  return Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An id from its hex text; null when it is not PAIRING_ID_BYTES of hex. */
export function parsePairingId(text: string): Uint8Array | null {
  if (!new RegExp(`^[0-9a-f]{${2 * PAIRING_ID_BYTES}}$`).test(text)) return null;
  return Uint8Array.from({ length: PAIRING_ID_BYTES }, (_, i) =>
    Number.parseInt(text.slice(2 * i, 2 * i + 2), 16),
  );
}
