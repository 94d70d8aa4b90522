/**
 * Unit tests of the handshake drivers (handshake.ts) over a scripted link: the cleartext
 * negotiation and its refusals, which side sends what first, and the pairing code. Complete
 * handshakes between two real ends are in establish.test.ts; random input in
 * test/fuzz/handshake.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { I_STATIC, PSK, R_STATIC, resolver } from "../../test/helpers/noise-transcripts.ts";
import { ScriptedLink } from "../../test/helpers/scripted-link.ts";
import { AssertionError } from "../errors.ts";
import { LINK_SUITES } from "../noise/suites.ts";
import {
  type InitiatorOptions,
  initiateHandshake,
  type ResponderOptions,
  respondHandshake,
} from "./handshake.ts";
import {
  type Choice,
  decodeChoice,
  decodeOffer,
  encodeChoice,
  encodeOffer,
  type HandshakeMode,
} from "./messages.ts";

const acceptAll = { isPinned: () => true, acceptTimestamp: () => true };

function respond(script: Uint8Array[], o: Partial<ResponderOptions> = {}, link = new ScriptedLink(script)) {
  const done = respondHandshake({
    link,
    resolver,
    staticKey: R_STATIC,
    version: "agent-1",
    suites: [...LINK_SUITES],
    peers: acceptAll,
    pairing: {},
    ...o,
  });
  return { link, done };
}

function initiate(mode: HandshakeMode, script: Uint8Array[], o: Partial<InitiatorOptions> = {}) {
  const link = new ScriptedLink(script);
  const done = initiateHandshake({
    link,
    resolver,
    staticKey: I_STATIC,
    version: "host-1",
    suites: [LINK_SUITES[0]],
    mode,
    responderKey: R_STATIC.publicKey,
    token: PSK,
    timestamp: () => 1n,
    ...o,
  });
  return { link, done };
}

describe("respondHandshake", () => {
  test("a pairing mode that is not open is refused with {refuse: mode} before any Noise message", async () => {
    for (const [mode, pairing] of [
      ["pair-code", { allowCode: false, token: PSK }],
      ["pair-psk", { allowCode: true }],
    ] as const) {
      const { link, done } = respond([encodeOffer({ mode, suites: [...LINK_SUITES] })], { pairing });
      await expect(done).rejects.toMatchObject({ code: "handshake-psk" });
      expect(link.sent.map(decodeChoice)).toEqual([{ refuse: "mode" }]);
    }
  });

  test("no suite in common is refused with {refuse: suite}", async () => {
    const offer = encodeOffer({ mode: "reconnect", suites: [LINK_SUITES[1]] });
    const { link, done } = respond([offer], { suites: [LINK_SUITES[0]] });
    await expect(done).rejects.toMatchObject({ code: "suite-mismatch" });
    expect(link.sent.map(decodeChoice)).toEqual([{ refuse: "suite" }]);
  });

  test("the responder's ranking picks among the offered suites", async () => {
    const offer = encodeOffer({ mode: "reconnect", suites: [...LINK_SUITES] });
    const { link, done } = respond([offer], { suites: [LINK_SUITES[1], LINK_SUITES[0]] });
    await expect(done).rejects.toMatchObject({ code: "link-lost" }); // the script ends after the offer
    expect(link.sent.map(decodeChoice)).toEqual([{ suite: LINK_SUITES[1] }]);
  });

  test("the pairing state is asked for when the offer arrives, not before", async () => {
    const asked: number[] = [];
    const link = new ScriptedLink([]);
    const offer = encodeOffer({ mode: "pair-psk", suites: [...LINK_SUITES] });
    link.recvHandshake = async () => {
      asked.push(0);
      return offer;
    };
    const pairing = () => {
      asked.push(1);
      return {};
    };
    const { done } = respond([], { pairing }, link);
    await expect(done).rejects.toMatchObject({ code: "handshake-psk" });
    expect(asked).toEqual([0, 1]);
  });
});

describe("initiateHandshake", () => {
  test("sends the offer first, with its mode and suites in its order", async () => {
    const { link, done } = initiate("pair-code", [], { suites: [LINK_SUITES[1], LINK_SUITES[0]] });
    await expect(done).rejects.toMatchObject({ code: "link-lost" });
    expect(link.sent.map(decodeOffer)).toEqual([
      { mode: "pair-code", suites: [LINK_SUITES[1], LINK_SUITES[0]] },
    ]);
  });

  test("refusals and a choice outside the offer end the handshake with fixed codes", async () => {
    const cases: [Choice, string][] = [
      [{ refuse: "suite" }, "suite-mismatch"],
      [{ refuse: "mode" }, "handshake-psk"],
      [{ refuse: "busy" }, "handshake-psk"],
      [{ suite: LINK_SUITES[1] }, "suite-mismatch"], // we offered only LINK_SUITES[0]
    ];
    for (const [choice, code] of cases) {
      const { link, done } = initiate("reconnect", [encodeChoice(choice)]);
      await expect(done).rejects.toMatchObject({ code });
      expect(link.sent.length).toBe(1); // the offer, and no Noise message
    }
  });

  test("reconnect without the responder's key or a timestamp is our bug (assert)", async () => {
    const choice = () => [encodeChoice({ suite: LINK_SUITES[0] })];
    await expect(initiate("reconnect", choice(), { responderKey: undefined }).done).rejects.toBeInstanceOf(
      AssertionError,
    );
    await expect(initiate("reconnect", choice(), { timestamp: undefined }).done).rejects.toBeInstanceOf(
      AssertionError,
    );
    await expect(initiate("pair-psk", choice(), { token: undefined }).done).rejects.toBeInstanceOf(
      AssertionError,
    );
  });
});
