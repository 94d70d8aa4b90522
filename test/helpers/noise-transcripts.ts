/**
 * Real handshakes of the link's patterns (IK, XX, XXpsk3) with fixed keys and ephemerals, so
 * that each message is the same every time: for core/noise/handshake-state.test.ts and the
 * handshake fuzz test, which feed a reader state other bytes in place of one real message.
 * Must never: use the fixed ephemerals outside tests (HandshakeOptions.fixedEphemeralForTestingOnly).
 */
import { expect } from "bun:test";
import { equalBytes } from "../../core/bytes.ts";
import { AssertionError } from "../../core/errors.ts";
import { dh25519 } from "../../core/noise/crypto-noble.ts";
import { HandshakeState } from "../../core/noise/handshake-state.ts";
import { parsePattern } from "../../core/noise/patterns.ts";
import { type LinkSuiteName, makeResolver, resolveLinkSuite } from "../../core/noise/suites.ts";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import { encodeTimestampPayload, encodeVersionPayload } from "../../core/session/messages.ts";
import { HANDSHAKE_PAYLOAD_MAX } from "../../core/wire/limits.ts";
import { filled, outcome } from "./outcome.ts";

export const resolver = makeResolver();
export const PROLOGUE = new TextEncoder().encode("fuzz prologue");
export const PSK = filled(32, 99);
export const I_STATIC = generateStaticKeyPair();
export const R_STATIC = generateStaticKeyPair();
export const I_EPHEMERAL = dh25519.generateKeyPair();
export const R_EPHEMERAL = dh25519.generateKeyPair();

export type PatternName = "IK" | "XX" | "XXpsk3";
const PATTERNS: Record<PatternName, number> = { IK: 2, XX: 3, XXpsk3: 3 };

/** Every message of every pattern: [pattern, index]. */
export const TARGETS: [PatternName, number][] = [
  ["IK", 0],
  ["IK", 1],
  ["XX", 0],
  ["XX", 1],
  ["XX", 2],
  ["XXpsk3", 0],
  ["XXpsk3", 1],
  ["XXpsk3", 2],
];

/** The payloads the link sends at each message (core/session/handshake.ts). */
export function payloadFor(pattern: PatternName, index: number): Uint8Array {
  if (pattern === "IK" && index === 0)
    return encodeTimestampPayload({ ts: 1n, pairing: new Uint8Array(16).fill(1), version: "host-1" });
  if (pattern !== "IK" && index === 0) return new Uint8Array(0);
  return encodeVersionPayload(index % 2 ? "agent-1" : "host-1");
}

function newState(pattern: PatternName, suiteName: LinkSuiteName, initiator: boolean): HandshakeState {
  return new HandshakeState(`Noise_${pattern}_${suiteName}`, {
    suite: resolveLinkSuite(resolver, suiteName),
    pattern: parsePattern(pattern)!,
    initiator,
    prologue: PROLOGUE,
    s: initiator ? I_STATIC : R_STATIC,
    rs: initiator && pattern === "IK" ? R_STATIC.publicKey : undefined,
    psks: pattern === "XXpsk3" ? [PSK] : [],
    fixedEphemeralForTestingOnly: initiator ? I_EPHEMERAL : R_EPHEMERAL,
  });
}

/** The whole real handshake, once per pattern and suite (fixed ephemerals make it repeatable). */
const transcripts = new Map<string, Uint8Array[]>();
export function transcript(pattern: PatternName, suite: LinkSuiteName): Uint8Array[] {
  const key = `${pattern}/${suite}`;
  let t = transcripts.get(key);
  if (!t) {
    const states = [newState(pattern, suite, true), newState(pattern, suite, false)];
    t = [];
    for (let i = 0; i < PATTERNS[pattern]; i++) {
      const message = states[i % 2]!.writeMessage(payloadFor(pattern, i));
      expect(states[(i + 1) % 2]!.readMessage(message)).toEqual(payloadFor(pattern, i));
      t.push(message);
    }
    expect(states[0]!.completed.handshakeHash).toEqual(states[1]!.completed.handshakeHash);
    transcripts.set(key, t);
  }
  return t;
}

/** A fresh state of the side that reads message `index`, replayed up to just before it. */
function readerAt(pattern: PatternName, suite: LinkSuiteName, index: number): HandshakeState {
  const t = transcript(pattern, suite);
  const reader = newState(pattern, suite, index % 2 === 1);
  for (let i = 0; i < index; i++) {
    // The reader writes the odd/even messages of its own side: same fixed ephemeral, same bytes.
    if (reader.isMyTurn) expect(reader.writeMessage(payloadFor(pattern, i))).toEqual(t[i]!);
    else reader.readMessage(t[i]!);
  }
  return reader;
}

/** XX message 1 is `-> e` with a cleartext payload: nothing in it is authenticated. */
export const authenticated = (pattern: PatternName, index: number) => !(pattern === "XX" && index === 0);

/**
 * Reads `bytes` at message `index` and checks the guarantees: an accepted payload is within
 * HANDSHAKE_PAYLOAD_MAX and, where the message is authenticated, only the real message is
 * accepted; a refused one poisons the state (the real message cannot be tried afterwards).
 */
export function checkRead(pattern: PatternName, suite: LinkSuiteName, index: number, bytes: Uint8Array) {
  const reader = readerAt(pattern, suite, index);
  const valid = transcript(pattern, suite)[index]!;
  const r = outcome(() => reader.readMessage(bytes));
  if ("ok" in r) {
    expect(r.ok.length).toBeLessThanOrEqual(HANDSHAKE_PAYLOAD_MAX);
    if (authenticated(pattern, index)) expect(equalBytes(bytes, valid)).toBe(true);
  } else {
    // Poisoned: the real message cannot be tried afterwards on the half-updated state.
    expect(() => reader.readMessage(valid)).toThrow(AssertionError);
  }
  return r;
}
