/**
 * Unit tests of the session's wire messages (messages.ts): the offer and choice, the handshake
 * payloads, and the prologue. Random input is in test/fuzz/handshake.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { filled, outcome } from "../../test/helpers/outcome.ts";
import { LINK_SUITES } from "../noise/suites.ts";
import { type CborValue, decodeCbor, encodeCbor } from "../wire/cbor.ts";
import { HANDSHAKE_PAYLOAD_MAX, NOISE_MAX_MESSAGE, PAIRING_ID_BYTES } from "../wire/limits.ts";
import {
  buildPrologue,
  decodeChoice,
  decodeOffer,
  decodeTimestampPayload,
  decodeVersionPayload,
  encodeChoice,
  encodeOffer,
  encodeTimestampPayload,
  encodeVersionPayload,
  PROLOGUE_LABEL,
} from "./messages.ts";

describe("offer and choice", () => {
  test("round-trip with the documented fields", () => {
    const offer = { mode: "pair-psk", suites: [LINK_SUITES[1], LINK_SUITES[0]] } as const;
    expect(decodeCbor(encodeOffer(offer))).toEqual({ v: 1, mode: "pair-psk", suites: [...offer.suites] });
    expect(decodeOffer(encodeOffer(offer))).toEqual(offer);
    expect(decodeChoice(encodeChoice({ suite: LINK_SUITES[0] }))).toEqual({ suite: LINK_SUITES[0] });
    expect(decodeChoice(encodeChoice({ refuse: "busy" }))).toEqual({ refuse: "busy" });
  });

  test("a choice of a suite we do not know is suite-mismatch; an unknown refusal is malformed", () => {
    expect(outcome(() => decodeChoice(encodeCbor({ suite: "25519_ChaChaPoly_SHA256" })))).toEqual({
      code: "suite-mismatch",
    });
    expect(outcome(() => decodeChoice(encodeCbor({ refuse: "why" })))).toEqual({
      code: "handshake-malformed",
    });
  });

  test("duplicate suites, unknown suites, extra fields and wrong versions are refused", () => {
    const bad: CborValue[] = [
      { v: 1, mode: "reconnect", suites: [LINK_SUITES[0], LINK_SUITES[0]] },
      { v: 1, mode: "reconnect", suites: ["25519_ChaChaPoly_SHA256"] },
      { v: 1, mode: "reconnect", suites: [] },
      { v: 1, mode: "reconnect", suites: [...LINK_SUITES, "x"] },
      { v: 2, mode: "reconnect", suites: [LINK_SUITES[0]] },
      { v: 1, mode: "pair", suites: [LINK_SUITES[0]] },
      { v: 1, mode: "reconnect", suites: [LINK_SUITES[0]], x: 0 },
    ];
    for (const v of bad) expect(outcome(() => decodeOffer(encodeCbor(v)))).toHaveProperty("code");
    expect(outcome(() => decodeChoice(encodeCbor({ suite: LINK_SUITES[0], refuse: "busy" })))).toHaveProperty(
      "code",
    );
    const pairing = new Uint8Array(PAIRING_ID_BYTES);
    const badTimestamps: CborValue[] = [
      { ts: -1, pairing, version: "a" },
      { ts: 1, version: "a" }, // no pairing id (a message 1 from before pairing ids)
      { ts: 1, pairing: pairing.subarray(1), version: "a" },
      { ts: 1, pairing: new Uint8Array(PAIRING_ID_BYTES + 1), version: "a" },
      { ts: 1, pairing: "00".repeat(PAIRING_ID_BYTES), version: "a" },
      { ts: 1, pairing, version: "a", x: 0 },
    ];
    for (const v of badTimestamps) {
      expect(outcome(() => decodeTimestampPayload(encodeCbor(v)))).toEqual({ code: "handshake-malformed" });
    }
  });
});

describe("handshake payloads", () => {
  test("a timestamp is a u64, small ones as numbers and large ones as bigints", () => {
    const pairing = new Uint8Array(PAIRING_ID_BYTES).fill(3);
    const small = { ts: 5n, pairing, version: "v1" };
    expect(decodeTimestampPayload(encodeTimestampPayload(small))).toEqual(small);
    const max = { ts: 2n ** 64n - 1n, pairing, version: "v1" };
    expect(decodeTimestampPayload(encodeTimestampPayload(max))).toEqual(max);
    expect(decodeVersionPayload(encodeVersionPayload("1.2.3+git-abc_x"))).toBe("1.2.3+git-abc_x");
  });

  test("edge seeds: empty, every single byte, the size limit and one over", () => {
    const decoders = [decodeOffer, decodeChoice, decodeTimestampPayload, decodeVersionPayload];
    const seeds: Uint8Array[] = [new Uint8Array(0)];
    for (let b = 0; b < 256; b++) seeds.push(Uint8Array.of(b));
    // {version: "<text>"} padded to exactly the limit, and one byte more.
    const atLimit = (extra: number) => {
      for (let n = HANDSHAKE_PAYLOAD_MAX - 20; ; n++) {
        const bytes = encodeCbor({ version: "a".repeat(n) });
        if (bytes.length === HANDSHAKE_PAYLOAD_MAX + extra) return bytes;
      }
    };
    seeds.push(atLimit(0), atLimit(1), filled(HANDSHAKE_PAYLOAD_MAX + 1), filled(NOISE_MAX_MESSAGE));
    for (const bytes of seeds) for (const decode of decoders) outcome(() => decode(bytes));
    // Both are well-formed CBOR and fail the version charset; the longer one fails earlier, on size.
    expect(outcome(() => decodeVersionPayload(atLimit(0)))).toEqual({ code: "handshake-malformed" });
    expect(() => decodeVersionPayload(atLimit(1))).toThrow("too long");
    expect(() => decodeVersionPayload(atLimit(0))).toThrow("version");
  });
});

describe("prologue", () => {
  test("binds the label, the transport, the offer and the choice: changing any changes it", () => {
    const offer = encodeOffer({ mode: "reconnect", suites: [...LINK_SUITES] });
    const choice = encodeChoice({ suite: LINK_SUITES[0] });
    const base = buildPrologue("tcp", offer, choice);
    expect(decodeCbor(base)).toEqual([PROLOGUE_LABEL, "tcp", offer, choice, new Uint8Array(0)]);
    const others = [
      buildPrologue("serial", offer, choice),
      buildPrologue("tcp", encodeOffer({ mode: "reconnect", suites: [LINK_SUITES[0]] }), choice),
      buildPrologue("tcp", offer, encodeChoice({ suite: LINK_SUITES[1] })),
      buildPrologue("tcp", offer, choice, Uint8Array.of(1)),
    ];
    for (const p of others) expect(p).not.toEqual(base);
  });
});
