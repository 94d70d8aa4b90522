/**
 * Unit tests of HandshakeState (handshake-state.ts): patterns round-trip, a wrong psk fails, the
 * pattern fixes whose turn it is, misuse asserts, and fixed hostile messages at every message of
 * the link's patterns. The published vectors are checked in test/vectors/noise-vectors.test.ts;
 * random messages in test/fuzz/handshake.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import {
  authenticated,
  checkRead,
  I_EPHEMERAL,
  I_STATIC,
  PSK,
  payloadFor,
  R_EPHEMERAL,
  R_STATIC,
  TARGETS,
  transcript,
} from "../../test/helpers/noise-transcripts.ts";
import { filled } from "../../test/helpers/outcome.ts";
import { AssertionError } from "../errors.ts";
import { HANDSHAKE_PAYLOAD_MAX, NOISE_MAX_MESSAGE } from "../wire/limits.ts";
import type { KeyPair } from "./crypto.ts";
import { HandshakeState } from "./handshake-state.ts";
import { isPskPattern, parsePattern } from "./patterns.ts";
import { LINK_SUITES, makeResolver, resolveLinkSuite } from "./suites.ts";

const suite = resolveLinkSuite(makeResolver(), LINK_SUITES[0]);
const EMPTY = new Uint8Array(0);

/** Both sides of `pattern` with every key the pattern needs known in advance. */
function states(pattern: string, o: { responderPsk?: Uint8Array } = {}): [HandshakeState, HandshakeState] {
  const p = parsePattern(pattern)!;
  const psks = (psk: Uint8Array) => (isPskPattern(p) ? [psk] : []);
  const make = (initiator: boolean, s: KeyPair, peer: KeyPair, psk: Uint8Array) =>
    new HandshakeState(`Noise_${pattern}_${LINK_SUITES[0]}`, {
      suite,
      pattern: p,
      initiator,
      prologue: Uint8Array.of(1, 2),
      s,
      rs: (initiator ? p.responderPre : p.initiatorPre).includes("s") ? peer.publicKey : undefined,
      psks: psks(psk),
    });
  return [make(true, I_STATIC, R_STATIC, PSK), make(false, R_STATIC, I_STATIC, o.responderPsk ?? PSK)];
}

/** Runs the handshake to completion; message i carries payload [i]. */
function run(i: HandshakeState, r: HandshakeState): void {
  for (let n = 0; !(i.isComplete && r.isComplete); n++) {
    const [writer, reader] = i.isMyTurn ? [i, r] : [r, i];
    expect(reader.readMessage(writer.writeMessage(Uint8Array.of(n)))).toEqual(Uint8Array.of(n));
  }
}

describe("HandshakeState", () => {
  for (const pattern of ["NN", "N", "KK", "XK", "IK", "XX", "XXpsk3", "NNpsk0", "IKpsk2"]) {
    test(`${pattern}: both sides agree on h, learn what the pattern reveals, and the split keys pair up`, () => {
      const [i, r] = states(pattern);
      run(i, r);
      const [a, b] = [i.completed, r.completed];
      expect(a.handshakeHash).toEqual(b.handshakeHash);
      const p = parsePattern(pattern)!;
      const sent = (tokens: readonly (readonly string[])[], initiator: boolean) =>
        tokens.some((m, k) => (p.oneWay || k % 2 === (initiator ? 0 : 1)) && m.includes("s"));
      if (sent(p.messages, true) || p.initiatorPre.includes("s"))
        expect(b.remoteStatic).toEqual(I_STATIC.publicKey);
      else expect(b.remoteStatic).toBeNull();
      if (sent(p.messages, false) || p.responderPre.includes("s"))
        expect(a.remoteStatic).toEqual(R_STATIC.publicKey);
      expect(b.receive.decryptWithAd(EMPTY, a.send.encryptWithAd(EMPTY, Uint8Array.of(5)))).toEqual(
        Uint8Array.of(5),
      );
      expect(a.receive.decryptWithAd(EMPTY, b.send.encryptWithAd(EMPTY, Uint8Array.of(6)))).toEqual(
        Uint8Array.of(6),
      );
    });
  }

  test("a wrong psk fails with handshake-decrypt at the first message the psk keys", () => {
    const other = filled(32, 1);
    // XXpsk3: the psk enters at the end of message 3, so messages 1 and 2 still pass.
    const [i, r] = states("XXpsk3", { responderPsk: other });
    r.readMessage(i.writeMessage(EMPTY));
    i.readMessage(r.writeMessage(EMPTY));
    expect(() => r.readMessage(i.writeMessage(EMPTY))).toThrow(
      expect.objectContaining({ code: "handshake-decrypt" }),
    );
    // NNpsk0: at once.
    const [i0, r0] = states("NNpsk0", { responderPsk: other });
    expect(() => r0.readMessage(i0.writeMessage(EMPTY))).toThrow(
      expect.objectContaining({ code: "handshake-decrypt" }),
    );
  });

  test("the pattern fixes the order: reading or writing out of turn is our bug (assert)", () => {
    const [i, r] = states("XX");
    expect([i.isMyTurn, r.isMyTurn]).toEqual([true, false]);
    expect(() => i.readMessage(new Uint8Array(32))).toThrow(AssertionError);
    expect(() => r.writeMessage(EMPTY)).toThrow(AssertionError);
    r.readMessage(i.writeMessage(EMPTY));
    expect([i.isMyTurn, r.isMyTurn]).toEqual([false, true]);
    expect(() => i.writeMessage(EMPTY)).toThrow(AssertionError);
  });

  test("after the last message, neither side reads nor writes; before it, there is no result", () => {
    const [i, r] = states("NN");
    expect(() => i.completed).toThrow(AssertionError);
    run(i, r);
    expect(() => i.writeMessage(EMPTY)).toThrow(AssertionError);
    expect(() => r.readMessage(EMPTY)).toThrow(AssertionError);
  });

  test("the peer's static key is known only once the message carrying it was read", () => {
    const [i, r] = states("XX");
    r.readMessage(i.writeMessage(EMPTY));
    expect(r.remoteStatic).toBeUndefined();
    expect(i.remoteStatic).toBeUndefined();
    i.readMessage(r.writeMessage(EMPTY));
    expect(i.remoteStatic).toEqual(R_STATIC.publicKey);
    r.readMessage(i.writeMessage(EMPTY));
    expect(r.remoteStatic).toEqual(I_STATIC.publicKey);
  });

  test("a missing pre-message key, a short psk or an oversized payload of ours is an assert", () => {
    const base = { suite, pattern: parsePattern("IK")!, initiator: true, prologue: EMPTY, s: I_STATIC };
    expect(() => new HandshakeState("Noise_IK", base)).toThrow(AssertionError); // no rs for "<- s"
    const shortPsk = { ...base, rs: R_STATIC.publicKey, psks: [new Uint8Array(31)] };
    expect(() => new HandshakeState("Noise_IK", shortPsk)).toThrow(AssertionError);
    const [i] = states("NN");
    expect(() => i.writeMessage(new Uint8Array(HANDSHAKE_PAYLOAD_MAX + 1))).toThrow(AssertionError);
  });
});

// --- Fixed hostile messages at every message of the link's patterns (test/helpers/noise-transcripts.ts) ---

describe("HandshakeState.readMessage edge cases", () => {
  test("edge seeds at every message: empty, short, low-order keys, size limits", () => {
    const lowOrder = [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))];
    for (const suite of LINK_SUITES) {
      for (const [pattern, index] of TARGETS) {
        const valid = transcript(pattern, suite)[index]!;
        expect(checkRead(pattern, suite, index, valid)).toEqual({ ok: payloadFor(pattern, index) });
        const seeds = [
          new Uint8Array(0),
          Uint8Array.of(0),
          filled(31),
          valid.subarray(0, valid.length - 1),
          ...lowOrder.map((e) => Uint8Array.from([...e, ...valid.subarray(32)])),
          filled(NOISE_MAX_MESSAGE),
          filled(NOISE_MAX_MESSAGE + 1),
        ];
        for (const bytes of seeds) {
          const r = checkRead(pattern, suite, index, bytes);
          if (authenticated(pattern, index)) expect(r).toHaveProperty("code");
        }
        expect(checkRead(pattern, suite, index, filled(NOISE_MAX_MESSAGE + 1))).toEqual({
          code: "handshake-malformed",
        });
      }
    }
  });

  test("a low-order ephemeral is refused where it is used in a DH", () => {
    const zeroE = Uint8Array.from([...new Uint8Array(32), ...filled(64)]);
    // IK message 1: es with the responder's static.
    expect(checkRead("IK", LINK_SUITES[0], 0, zeroE)).toEqual({ code: "handshake-malformed" });
    // XX message 2: ee with the initiator's ephemeral.
    expect(checkRead("XX", LINK_SUITES[0], 1, zeroE)).toEqual({ code: "handshake-malformed" });
  });

  test("XX message 1 (cleartext payload) accepts at most HANDSHAKE_PAYLOAD_MAX payload bytes", () => {
    const e = R_EPHEMERAL.publicKey;
    const withPayload = (n: number) => Uint8Array.from([...e, ...filled(n)]);
    expect(checkRead("XX", LINK_SUITES[0], 0, withPayload(0))).toEqual({ ok: new Uint8Array(0) });
    expect(checkRead("XX", LINK_SUITES[0], 0, withPayload(HANDSHAKE_PAYLOAD_MAX))).toHaveProperty("ok");
    for (const n of [HANDSHAKE_PAYLOAD_MAX + 1, HANDSHAKE_PAYLOAD_MAX + 16, HANDSHAKE_PAYLOAD_MAX + 17]) {
      expect(checkRead("XX", LINK_SUITES[0], 0, withPayload(n))).toEqual({ code: "handshake-malformed" });
    }
  });

  test("fixture keys are distinct", () => {
    const keys: KeyPair[] = [I_STATIC, R_STATIC, I_EPHEMERAL, R_EPHEMERAL];
    expect(new Set(keys.map((k) => k.publicKey.join())).size).toBe(4);
  });
});
