import { describe, expect, test } from "bun:test";
import { v1Code } from "../../test/helpers/pairing-mitm.ts";
import { ProtocolError } from "../errors.ts";
import { blake2sHash } from "../noise/crypto-noble.ts";
import { type CborMap, encodeCbor } from "../wire/cbor.ts";
import * as handshake from "./handshake.ts";
import {
  decodeChoice,
  decodePairingPayload,
  encodeChoice,
  encodePairingPayload,
  encodeVersionPayload,
  MAX_LOCKED_MINUTES,
} from "./messages.ts";
import { checkReveal, commitTo, freshNonce, lockedText, pairingCode } from "./pairing-code.ts";

const h = new Uint8Array(32).fill(1);
const a = new Uint8Array(32).fill(2);
const b = new Uint8Array(32).fill(3);

describe("pairing code (version 2: commit, then reveal)", () => {
  test("known answer: BLAKE2s(label || h || committer nonce || other nonce) mod 10^6", () => {
    expect(pairingCode(h, a, b)).toBe("530299");
    const label = new TextEncoder().encode("qubes-air pairing code v2 commit-reveal");
    const d = blake2sHash.hash(label, h, a, b);
    const n = new DataView(d.buffer, d.byteOffset, 8).getBigUint64(0, false) % 1_000_000n;
    expect(pairingCode(h, a, b)).toBe(n.toString().padStart(6, "0"));
  });

  test("the version 1 derivation is gone: its vector does not pass, and no h-only function remains", () => {
    // Version 1: BLAKE2s("qubes-air pairing code" || h) mod 10^6 gave 839559 for this h.
    expect(v1Code(h)).toBe("839559");
    expect(pairingCode(h, a, b)).not.toBe("839559");
    expect(pairingCode(h, b, a)).not.toBe("839559");
    expect(pairingCode.length).toBe(3); // h alone is not enough to call it
    expect(Object.keys(handshake)).not.toContain("pairingCode");
    expect(() => pairingCode(h, new Uint8Array(0), new Uint8Array(0))).toThrow(); // an assert
  });

  test("every input changes the code, and the nonces' order matters", () => {
    const base = pairingCode(h, a, b);
    expect(pairingCode(h, b, a)).not.toBe(base);
    expect(pairingCode(new Uint8Array(32).fill(9), a, b)).not.toBe(base);
    const a2 = a.slice();
    a2[31] = a2[31]! ^ 1;
    expect(pairingCode(h, a2, b)).not.toBe(base);
    const b2 = b.slice();
    b2[0] = b2[0]! ^ 0x80;
    expect(pairingCode(h, a, b2)).not.toBe(base);
  });

  test("the commitment opens with the nonce only: one flipped bit or a wrong length is pairing-commitment", () => {
    expect(Buffer.from(commitTo(a)).toString("hex")).toBe(
      "227cac9fd9b53b839a669d623ae39ac410d637a4312c71aa7fc0e83cf14f9d15",
    );
    expect(() => checkReveal(commitTo(a), a)).not.toThrow();
    for (const bad of [
      b,
      a.subarray(0, 31),
      new Uint8Array(33),
      Uint8Array.of(...a.subarray(0, 31), a[31]! ^ 1),
    ]) {
      try {
        checkReveal(commitTo(a), bad);
        throw new Error("accepted");
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
        expect((e as ProtocolError).code).toBe("pairing-commitment");
      }
    }
  });

  test("fresh nonces are 32 bytes and differ", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) seen.add(Buffer.from(freshNonce()).toString("hex"));
    expect(seen.size).toBe(100);
    expect(freshNonce()).toHaveLength(32);
  });

  test("the lock's words, as the device's log and the host's CLI show them", () => {
    expect(lockedText(15)).toBe("code pairing locked for 15 minutes after 3 failed attempts");
    expect(lockedText(1)).toBe("code pairing locked for 1 minute after 3 failed attempts");
  });
});

describe("pair-code wire messages", () => {
  test("msg 2 and msg 3 payloads: exactly version and a 32-byte commit or nonce", () => {
    expect(decodePairingPayload(encodePairingPayload("agent-1", "commit", a), "commit")).toEqual({
      version: "agent-1",
      value: a,
    });
    const refused = [
      encodeVersionPayload("agent-1"), // version 1 payload
      encodePairingPayload("agent-1", "nonce", a), // the other field
      encodeCbor({ version: "agent-1", commit: a.subarray(0, 31) }),
      encodeCbor({ version: "agent-1", commit: "x".repeat(32) }),
      encodeCbor({ version: "agent-1", commit: a, extra: 1 }),
    ];
    for (const bytes of refused) expect(() => decodePairingPayload(bytes, "commit")).toThrow(ProtocolError);
  });

  test("a locked refusal carries 1..15 minutes and nothing else", () => {
    expect(decodeChoice(encodeChoice({ refuse: "locked", minutes: 15 }))).toEqual({
      refuse: "locked",
      minutes: 15,
    });
    expect(MAX_LOCKED_MINUTES).toBe(15);
    const maps: CborMap[] = [
      { refuse: "locked" },
      { refuse: "locked", minutes: 0 },
      { refuse: "locked", minutes: 16 },
      { refuse: "locked", minutes: "7" },
      { refuse: "busy", minutes: 3 },
      { refuse: "locked", minutes: 3, why: "x" },
    ];
    const t = (s: string) => [0x60 + s.length, ...new TextEncoder().encode(s)];
    // {refuse: "locked", minutes: 1.5} with a half-precision float (encodeCbor writes none).
    const float = Uint8Array.of(0xa2, ...t("refuse"), ...t("locked"), ...t("minutes"), 0xf9, 0x3e, 0x00);
    for (const bytes of [...maps.map((m) => encodeCbor(m)), float]) {
      expect(() => decodeChoice(bytes)).toThrow(ProtocolError);
    }
  });
});
