/**
 * The link's handshakes (DESIGN.md "The link", step 3; noise-transport.md §7.2):
 *   offer  ->                      (cleartext: mode and the initiator's suites)
 *   choice <-                      (cleartext: the responder's pick, or a refusal)
 *   then, with both bound into the prologue:
 *   reconnect  Noise_IK     host initiates; msg 1 carries a strictly increasing timestamp and
 *                           the pairing id (core/session/pairing-id.ts) of the pairing it is for
 *   pair-psk   Noise_XXpsk3 32-byte one-time token from the image builder
 *   pair-code  Noise_XX     6-digit code by commit, then reveal (core/session/pairing-code.ts):
 *                           msg 2 commits to the device's nonce, msg 3 carries the host's, the
 *                           device reveals after the handshake (Session, PAIR_REVEAL)
 *
 * Must never: accept a static key that is not pinned (reconnect), accept a replayed or
 * non-increasing msg-1 timestamp or a msg 1 made for an earlier pairing of the key, run DH work
 * for an unauthenticated peer before the link allowed it (RecordLink.beforeDh), let the peer
 * pick the pattern, start a code pairing while the responder's code pairing is locked, let the
 * device's nonce out before the attempt is counted (PairingState.codeAttempt), or complete a
 * pairing whose code the local user has not confirmed.
 * Errors are ProtocolError with fixed codes.
 */
import { assert, ProtocolError } from "../errors.ts";
import { type HandshakeResult, HandshakeState } from "../noise/handshake-state.ts";
import { parsePattern } from "../noise/patterns.ts";
import { type CryptoResolver, type LinkSuiteName, resolveLinkSuite } from "../noise/suites.ts";
import { publicKeyFromBytes, type StaticKeyPair, type StaticPublicKey } from "./key-text.ts";
import {
  buildPrologue,
  decodeChoice,
  decodeOffer,
  decodePairingPayload,
  decodeTimestampPayload,
  decodeVersionPayload,
  encodeChoice,
  encodeOffer,
  encodePairingPayload,
  encodeTimestampPayload,
  encodeVersionPayload,
  type HandshakeMode,
  MAX_LOCKED_MINUTES,
  PATTERN_OF_MODE,
} from "./messages.ts";
import { commitTo, freshNonce, pairingCode } from "./pairing-code.ts";
import { LEGACY_PAIRING_ID, pairingIdOf } from "./pairing-id.ts";
import type { RecordLink } from "./record-link.ts";

/**
 * X25519 operations the responder runs for a peer before it proved a pinned key (if ever): IK
 * message 1 is es and ss; XX(psk3) message 2 is a key generation, ee and es, message 3 se. An
 * authenticated reconnect's message 2 (3 more) is not counted: only pinned hosts get there.
 */
export const RESPONDER_DH_OPS = { ik: 2, xx: 4 } as const;

export interface Established {
  readonly mode: HandshakeMode;
  readonly suite: LinkSuiteName;
  readonly result: HandshakeResult;
  /** The peer's static public key (pinned for reconnect, learned when pairing). */
  readonly peerKey: StaticPublicKey;
  readonly peerVersion: string;
  /**
   * Pair-code mode: the 6 digits both users must see. The device (responder) knows them when the
   * handshake ends; the host once the device's reveal opened its commitment (establish.ts).
   */
  readonly pairingCode?: string;
  /** Pair-code mode: what the Session needs for the reveal. */
  readonly codePairing?: CodePairing;
  /**
   * Pairing modes: the new pairing's id, for both ends to store with the pinned key.
   * Reconnect: the id message 1 carried (the device accepted it as the current pairing's).
   */
  readonly pairingId: Uint8Array;
}

/** Pair-code material for the transport phase (core/session/pairing-code.ts). */
export type CodePairing =
  /** The device (responder): committed in msg 2; sends its nonce as the first record. */
  | { readonly role: "committer"; readonly nonce: Uint8Array; readonly peerNonce: Uint8Array }
  /** The host (initiator): holds the device's commitment until PAIR_REVEAL opens it. */
  | { readonly role: "checker"; readonly nonce: Uint8Array; readonly commitment: Uint8Array };

/** The responder refused a code pairing: too many failed attempts; `minutes` until it reopens. */
export class PairingLockedError extends ProtocolError {
  constructor(readonly minutes: number) {
    super("pairing-locked", "code pairing locked after failed attempts");
  }
}

export interface InitiatorOptions {
  readonly link: RecordLink;
  readonly resolver: CryptoResolver;
  readonly staticKey: StaticKeyPair;
  readonly version: string;
  /** Our suites, best first (a self-measurement at start-up ranks them). */
  readonly suites: readonly LinkSuiteName[];
  readonly mode: HandshakeMode;
  /** reconnect: the responder's pinned key. */
  readonly responderKey?: StaticPublicKey;
  /** pair-psk: the 32-byte token. */
  readonly token?: Uint8Array;
  /** reconnect: a value greater than any sent before with this key (e.g. time in µs, persisted). */
  readonly timestamp?: () => bigint;
  /**
   * reconnect: the id of the pairing with the responder (Established.pairingId when we paired);
   * LEGACY_PAIRING_ID when the pairing predates pairing ids.
   */
  readonly pairingId?: Uint8Array;
}

/** What the responder knows about initiators it has paired with. */
export interface PeerStore {
  isPinned(key: StaticPublicKey): boolean;
  /**
   * Accepts and records ts only if `pairing` is the id recorded when key was last pinned (an IK
   * message 1 made for an earlier pairing is a replay, even with a timestamp above the new
   * pairing's) and ts is strictly greater than the last accepted for this key and pairing; a
   * refusal changes nothing. May return a promise: the reply is sent only after it resolves, so a
   * store that persists the timestamp refuses a replay even after a restart.
   */
  acceptTimestamp(key: StaticPublicKey, ts: bigint, pairing: Uint8Array): boolean | Promise<boolean>;
}

export interface PairingState {
  readonly token?: Uint8Array;
  readonly allowCode?: boolean;
  /** Code pairing is locked for this many more minutes: a pair-code offer is refused "locked". */
  readonly codeLockedMinutes?: number;
  /**
   * Called when a pair-code handshake is complete and before the device's nonce (the reveal)
   * leaves: counts the attempt as failed until the pairing is confirmed, and resolves once that
   * is on disk. Throwing (ProtocolError "pairing-locked") ends the attempt with nothing revealed.
   */
  readonly codeAttempt?: () => void | Promise<void>;
}

export interface ResponderOptions {
  readonly link: RecordLink;
  readonly resolver: CryptoResolver;
  readonly staticKey: StaticKeyPair;
  readonly version: string;
  readonly suites: readonly LinkSuiteName[];
  readonly peers: PeerStore;
  /** Which pairing modes are open now (a token present, a pairing window open). */
  /**
   * Which pairing modes are open; a function is called when the offer arrives (a tty handshake
   * may start long before it, and a token may be created meanwhile).
   */
  readonly pairing: PairingState | (() => PairingState | Promise<PairingState>);
}

export async function initiateHandshake(o: InitiatorOptions): Promise<Established> {
  const offerBytes = encodeOffer({ mode: o.mode, suites: o.suites });
  await o.link.sendHandshake(offerBytes);
  const choiceBytes = await o.link.recvHandshake();
  const choice = decodeChoice(choiceBytes);
  if ("refuse" in choice) {
    if (choice.refuse === "locked") {
      if (o.mode !== "pair-code") throw new ProtocolError("handshake-malformed", "refusal");
      throw new PairingLockedError(choice.minutes);
    }
    throw new ProtocolError(choice.refuse === "suite" ? "suite-mismatch" : "handshake-psk");
  }
  if (!o.suites.includes(choice.suite)) throw new ProtocolError("suite-mismatch");
  const hs = new HandshakeState(`Noise_${PATTERN_OF_MODE[o.mode]}_${choice.suite}`, {
    suite: resolveLinkSuite(o.resolver, choice.suite),
    pattern: parsePattern(PATTERN_OF_MODE[o.mode])!,
    initiator: true,
    prologue: buildPrologue(o.link.transport, offerBytes, choiceBytes),
    s: o.staticKey,
    rs: o.mode === "reconnect" ? required(o.responderKey, "responderKey") : undefined,
    psks: o.mode === "pair-psk" ? [required(o.token, "token")] : [],
  });
  let peerVersion: string;
  let codePairing: CodePairing | undefined;
  let pairingId: Uint8Array | undefined;
  if (o.mode === "reconnect") {
    // -> e, es, s, ss   (payload: timestamp against replay of this message)
    const ts = required(o.timestamp, "timestamp")();
    pairingId = o.pairingId ?? LEGACY_PAIRING_ID;
    await o.link.sendHandshake(
      hs.writeMessage(encodeTimestampPayload({ ts, pairing: pairingId, version: o.version })),
    );
    // <- e, ee, se
    peerVersion = decodeVersionPayload(hs.readMessage(await o.link.recvHandshake()));
  } else if (o.mode === "pair-code") {
    // -> e
    await o.link.sendHandshake(hs.writeMessage(new Uint8Array(0)));
    // <- e, ee, s, es   (payload: the device's commitment)
    const msg2 = decodePairingPayload(hs.readMessage(await o.link.recvHandshake()), "commit");
    peerVersion = msg2.version;
    // -> s, se   (payload: our nonce, chosen after the commitment arrived)
    const nonce = freshNonce();
    await o.link.sendHandshake(hs.writeMessage(encodePairingPayload(o.version, "nonce", nonce)));
    codePairing = { role: "checker", nonce, commitment: msg2.value };
  } else {
    // -> e
    await o.link.sendHandshake(hs.writeMessage(new Uint8Array(0)));
    // <- e, ee, s, es
    peerVersion = decodeVersionPayload(hs.readMessage(await o.link.recvHandshake()));
    // -> s, se [, psk]
    await o.link.sendHandshake(hs.writeMessage(encodeVersionPayload(o.version)));
  }
  return established(o.mode, choice.suite, hs, peerVersion, codePairing, pairingId);
}

export async function respondHandshake(o: ResponderOptions): Promise<Established> {
  const offerBytes = await o.link.recvHandshake();
  const offer = decodeOffer(offerBytes);
  const pairing = typeof o.pairing === "function" ? await o.pairing() : o.pairing;
  const suite = o.suites.find((s) => offer.suites.includes(s));
  const modeOpen =
    offer.mode === "reconnect" ||
    (offer.mode === "pair-psk" && pairing.token !== undefined) ||
    (offer.mode === "pair-code" && pairing.allowCode === true);
  if (!suite || !modeOpen) {
    await o.link.sendHandshake(encodeChoice({ refuse: suite ? "mode" : "suite" }));
    throw new ProtocolError(suite ? "handshake-psk" : "suite-mismatch");
  }
  if (offer.mode === "pair-code" && pairing.codeLockedMinutes !== undefined) {
    const minutes = Math.min(MAX_LOCKED_MINUTES, Math.max(1, Math.ceil(pairing.codeLockedMinutes)));
    await o.link.sendHandshake(encodeChoice({ refuse: "locked", minutes }));
    throw new PairingLockedError(minutes);
  }
  const choiceBytes = encodeChoice({ suite });
  await o.link.sendHandshake(choiceBytes);
  const hs = new HandshakeState(`Noise_${PATTERN_OF_MODE[offer.mode]}_${suite}`, {
    suite: resolveLinkSuite(o.resolver, suite),
    pattern: parsePattern(PATTERN_OF_MODE[offer.mode])!,
    initiator: false,
    prologue: buildPrologue(o.link.transport, offerBytes, choiceBytes),
    s: o.staticKey,
    psks: offer.mode === "pair-psk" ? [pairing.token!] : [],
  });
  let peerVersion: string;
  let codePairing: CodePairing | undefined;
  let pairingId: Uint8Array | undefined;
  if (offer.mode === "reconnect") {
    // -> e, es, s, ss
    const bytes = await o.link.recvHandshake();
    o.link.beforeDh?.(RESPONDER_DH_OPS.ik);
    const msg1 = decodeTimestampPayload(hs.readMessage(bytes));
    const initiatorKey = publicKeyFromBytes(hs.remoteStatic!);
    if (!o.peers.isPinned(initiatorKey)) throw new ProtocolError("handshake-unknown-key");
    o.link.peerAuthenticated?.();
    if (!(await o.peers.acceptTimestamp(initiatorKey, msg1.ts, msg1.pairing))) {
      throw new ProtocolError("handshake-replay");
    }
    pairingId = msg1.pairing;
    // <- e, ee, se
    await o.link.sendHandshake(hs.writeMessage(encodeVersionPayload(o.version)));
    peerVersion = msg1.version;
  } else if (offer.mode === "pair-code") {
    // -> e
    hs.readMessage(await o.link.recvHandshake());
    o.link.beforeDh?.(RESPONDER_DH_OPS.xx);
    // <- e, ee, s, es   (payload: our commitment, before we know anything the host will send)
    const nonce = freshNonce();
    await o.link.sendHandshake(hs.writeMessage(encodePairingPayload(o.version, "commit", commitTo(nonce))));
    // -> s, se   (payload: the host's nonce)
    const msg3 = decodePairingPayload(hs.readMessage(await o.link.recvHandshake()), "nonce");
    peerVersion = msg3.version;
    // From here the attempt counts: the reveal (the first record, Session) gives the peer a code.
    await pairing.codeAttempt?.();
    codePairing = { role: "committer", nonce, peerNonce: msg3.value };
  } else {
    // -> e
    hs.readMessage(await o.link.recvHandshake());
    o.link.beforeDh?.(RESPONDER_DH_OPS.xx);
    // <- e, ee, s, es
    await o.link.sendHandshake(hs.writeMessage(encodeVersionPayload(o.version)));
    // -> s, se [, psk]   (a wrong token fails here, at the psk's MixKeyAndHash)
    try {
      peerVersion = decodeVersionPayload(hs.readMessage(await o.link.recvHandshake()));
    } catch (error) {
      if (error instanceof ProtocolError && error.code === "handshake-decrypt" && offer.mode === "pair-psk") {
        throw new ProtocolError("handshake-psk");
      }
      throw error;
    }
    // A message 3 that decrypted under the token proves the initiator holds it.
    if (offer.mode === "pair-psk") o.link.peerAuthenticated?.();
  }
  return established(offer.mode, suite, hs, peerVersion, codePairing, pairingId);
}

function established(
  mode: HandshakeMode,
  suite: LinkSuiteName,
  hs: HandshakeState,
  peerVersion: string,
  codePairing: CodePairing | undefined,
  reconnectPairing: Uint8Array | undefined,
): Established {
  const result = hs.completed;
  assert(
    (mode === "reconnect") === (reconnectPairing !== undefined),
    "reconnect and only it names a pairing",
  );
  assert(result.remoteStatic !== null, "link patterns always authenticate the peer");
  assert((mode === "pair-code") === (codePairing !== undefined), "pair-code and only it has nonces");
  return {
    mode,
    suite,
    result,
    peerKey: publicKeyFromBytes(result.remoteStatic),
    peerVersion,
    pairingId: reconnectPairing ?? pairingIdOf(result.handshakeHash),
    ...(codePairing ? { codePairing } : {}),
    ...(codePairing?.role === "committer"
      ? { pairingCode: pairingCode(result.handshakeHash, codePairing.nonce, codePairing.peerNonce) }
      : {}),
  };
}

function required<T>(value: T | undefined, name: string): T {
  assert(value !== undefined, `${name} is required for this mode`);
  return value;
}
