/**
 * Session wire messages: the cleartext offer/choice that negotiates mode and suite before the
 * handshake, the handshake payloads, and the record kinds of the transport phase.
 * Layouts (all control messages are strict CBOR maps, core/wire/cbor.ts):
 *
 *   offer   {v: 1, mode: "reconnect"|"pair-psk"|"pair-code", suites: [name...]}   initiator -> responder
 *   choice  {suite: name}  |  {refuse: code}  |  {refuse: "locked", minutes: 1..15}
 *                                                                              responder -> initiator
 *   IK msg1 payload {ts: u64, pairing: 16 bytes, version}
 *                                        ts strictly increasing per initiator key, pairing the id
 *                                        of the pairing it belongs to (replay defence, also across
 *                                        a re-pairing: handshake.ts)
 *   pair-code XX msg2 payload {version, commit: 32 bytes}   (BLAKE2s of the device's nonce)
 *   pair-code XX msg3 payload {version, nonce: 32 bytes}    (the host's nonce)
 *   other handshake payloads {version: string}
 * pair-code is version 2 of code pairing (commit, then reveal; core/session/pairing-code.ts). A
 * version 1 peer (plain {version} payloads, a code from h alone) fails loudly with
 * handshake-malformed on either side: the two never agree on a code silently.
 *
 * Transport records: kind u8 | body. Must never: accept unknown fields, kinds or names.
 */
import { ProtocolError } from "../errors.ts";
import { LINK_SUITES, type LinkSuiteName } from "../noise/suites.ts";
import { type CborMap, type CborValue, decodeCbor, encodeCbor } from "../wire/cbor.ts";
import {
  HANDSHAKE_PAYLOAD_MAX,
  PAIR_CODE_LOCK_MS,
  PAIR_NONCE_BYTES,
  PAIRING_ID_BYTES,
} from "../wire/limits.ts";

export const PROTOCOL_VERSION = 1;
export const PROLOGUE_LABEL = "qubes-air/1";

export const MODES = ["reconnect", "pair-psk", "pair-code"] as const;
export type HandshakeMode = (typeof MODES)[number];

/** Noise pattern per mode (DESIGN.md "The link", step 3). */
export const PATTERN_OF_MODE: Record<HandshakeMode, string> = {
  reconnect: "IK",
  "pair-psk": "XXpsk3",
  "pair-code": "XX",
};

/** Reasons a responder refuses before any handshake; fixed strings, no detail. */
export const REFUSALS = ["suite", "mode", "busy", "locked"] as const;
export type Refusal = (typeof REFUSALS)[number];

export const RecordKind = {
  /** A vchan message (core/vchan). */
  VCHAN: 1,
  /** Keepalive ping: u64 id; answered by PONG with the same id (round-trip time). */
  PING: 2,
  PONG: 3,
  /** One message of a rekey handshake. */
  REKEY: 4,
  /** The initiator's last record under the old send key (TCP has no epoch byte). */
  REKEY_SWITCH: 5,
  /** The user confirmed the 6-digit pairing code on this side. */
  PAIR_CONFIRM: 6,
  /** Orderly close: u8 reason. */
  CLOSE: 7,
  /** pair-code, device -> host, before any PAIR_CONFIRM: the device's 32-byte nonce (its reveal). */
  PAIR_REVEAL: 8,
} as const;

export interface Offer {
  readonly mode: HandshakeMode;
  readonly suites: readonly LinkSuiteName[];
}

function decodeMap(bytes: Uint8Array): CborMap {
  if (bytes.length > HANDSHAKE_PAYLOAD_MAX) throw new ProtocolError("handshake-malformed", "too long");
  let value: CborValue;
  try {
    value = decodeCbor(bytes);
  } catch (error) {
    if (error instanceof ProtocolError) throw new ProtocolError("handshake-malformed", "not strict CBOR");
    throw error;
  }
  if (value === null || typeof value !== "object" || value instanceof Uint8Array || Array.isArray(value)) {
    throw new ProtocolError("handshake-malformed", "not a map");
  }
  return value;
}

function exactKeys(map: CborMap, keys: readonly string[]): void {
  const present = Object.keys(map);
  if (present.length !== keys.length || !keys.every((k) => Object.hasOwn(map, k))) {
    throw new ProtocolError("handshake-malformed", "unexpected fields");
  }
}

export function encodeOffer(offer: Offer): Uint8Array {
  return encodeCbor({ v: PROTOCOL_VERSION, mode: offer.mode, suites: [...offer.suites] });
}

export function decodeOffer(bytes: Uint8Array): Offer {
  const map = decodeMap(bytes);
  exactKeys(map, ["v", "mode", "suites"]);
  if (map.v !== PROTOCOL_VERSION) throw new ProtocolError("handshake-malformed", "version");
  const mode = MODES.find((m) => m === map.mode);
  if (!mode) throw new ProtocolError("handshake-malformed", "mode");
  const suites = map.suites;
  if (!Array.isArray(suites) || suites.length === 0 || suites.length > LINK_SUITES.length) {
    throw new ProtocolError("handshake-malformed", "suites");
  }
  const names: LinkSuiteName[] = [];
  for (const s of suites) {
    const name = LINK_SUITES.find((known) => known === s);
    if (!name || names.includes(name)) throw new ProtocolError("handshake-malformed", "suites");
    names.push(name);
  }
  return { mode, suites: names };
}

export type Choice =
  | { readonly suite: LinkSuiteName }
  | { readonly refuse: Exclude<Refusal, "locked"> }
  | { readonly refuse: "locked"; readonly minutes: number };

/** The most minutes a "locked" refusal may name: the lock never lasts longer. */
export const MAX_LOCKED_MINUTES = Math.ceil(PAIR_CODE_LOCK_MS / 60_000);

export function encodeChoice(choice: Choice): Uint8Array {
  if ("suite" in choice) return encodeCbor({ suite: choice.suite });
  if (choice.refuse === "locked") return encodeCbor({ refuse: choice.refuse, minutes: choice.minutes });
  return encodeCbor({ refuse: choice.refuse });
}

export function decodeChoice(bytes: Uint8Array): Choice {
  const map = decodeMap(bytes);
  if (Object.hasOwn(map, "suite")) {
    exactKeys(map, ["suite"]);
    const suite = LINK_SUITES.find((s) => s === map.suite);
    if (!suite) throw new ProtocolError("suite-mismatch");
    return { suite };
  }
  if (map.refuse === "locked") {
    exactKeys(map, ["refuse", "minutes"]);
    const minutes = map.minutes;
    if (
      typeof minutes !== "number" ||
      !Number.isInteger(minutes) ||
      minutes < 1 ||
      minutes > MAX_LOCKED_MINUTES
    )
      throw new ProtocolError("handshake-malformed", "refusal");
    return { refuse: "locked", minutes };
  }
  exactKeys(map, ["refuse"]);
  const refuse = REFUSALS.find((r) => r === map.refuse);
  if (!refuse || refuse === "locked") throw new ProtocolError("handshake-malformed", "refusal");
  return { refuse };
}

export interface TimestampPayload {
  readonly ts: bigint;
  /** The pairing id (PAIRING_ID_BYTES) both ends learnt when they paired (pairingIdOf). */
  readonly pairing: Uint8Array;
  readonly version: string;
}

export function encodeTimestampPayload(p: TimestampPayload): Uint8Array {
  return encodeCbor({ ts: p.ts, pairing: p.pairing, version: p.version });
}

export function decodeTimestampPayload(bytes: Uint8Array): TimestampPayload {
  const map = decodeMap(bytes);
  exactKeys(map, ["ts", "pairing", "version"]);
  const { ts, pairing } = map;
  const version = checkVersion(map.version);
  if (!(pairing instanceof Uint8Array) || pairing.length !== PAIRING_ID_BYTES) {
    throw new ProtocolError("handshake-malformed", "pairing");
  }
  if (typeof ts === "number" && Number.isSafeInteger(ts) && ts >= 0)
    return { ts: BigInt(ts), pairing, version };
  if (typeof ts === "bigint" && ts >= 0n) return { ts, pairing, version };
  throw new ProtocolError("handshake-malformed", "timestamp");
}

export function encodeVersionPayload(version: string): Uint8Array {
  return encodeCbor({ version });
}

export function decodeVersionPayload(bytes: Uint8Array): string {
  const map = decodeMap(bytes);
  exactKeys(map, ["version"]);
  return checkVersion(map.version);
}

/** The pair-code payloads: msg 2 carries the device's commitment, msg 3 the host's nonce. */
export type PairingField = "commit" | "nonce";

export function encodePairingPayload(version: string, field: PairingField, value: Uint8Array): Uint8Array {
  return encodeCbor({ version, [field]: value });
}

export function decodePairingPayload(
  bytes: Uint8Array,
  field: PairingField,
): { version: string; value: Uint8Array } {
  const map = decodeMap(bytes);
  exactKeys(map, ["version", field]);
  const value = map[field];
  if (!(value instanceof Uint8Array) || value.length !== PAIR_NONCE_BYTES) {
    throw new ProtocolError("handshake-malformed", field);
  }
  return { version: checkVersion(map.version), value };
}

/** A version string is shown in `qubes-air list`; only a short printable charset passes. */
function checkVersion(version: CborValue | undefined): string {
  if (typeof version !== "string" || !/^[0-9A-Za-z.+_-]{1,32}$/.test(version)) {
    throw new ProtocolError("handshake-malformed", "version");
  }
  return version;
}

/** The prologue binds the negotiation (§6): a changed offer or choice breaks the handshake. */
export function buildPrologue(
  transport: string,
  offer: Uint8Array,
  choice: Uint8Array,
  extra?: Uint8Array,
): Uint8Array {
  return encodeCbor([PROLOGUE_LABEL, transport, offer, choice, extra ?? new Uint8Array(0)]);
}
