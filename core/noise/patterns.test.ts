/**
 * Unit tests of the pattern table and name parser (patterns.ts): psk placement, pre-messages,
 * and null for anything we cannot represent exactly.
 */
import { describe, expect, test } from "bun:test";
import { isPskPattern, parsePattern, parseProtocolName } from "./patterns.ts";

describe("parsePattern", () => {
  test("XX, IK and the one-way N as in the spec", () => {
    expect(parsePattern("XX")).toEqual({
      name: "XX",
      initiatorPre: [],
      responderPre: [],
      messages: [["e"], ["e", "ee", "s", "es"], ["s", "se"]],
      oneWay: false,
    });
    expect(parsePattern("IK")).toMatchObject({
      responderPre: ["s"],
      messages: [
        ["e", "es", "s", "ss"],
        ["e", "ee", "se"],
      ],
    });
    expect(parsePattern("N")).toMatchObject({ oneWay: true, messages: [["e", "es"]] });
  });

  test("psk0 opens the first message; pskN closes message N; modifiers combine", () => {
    expect(parsePattern("XXpsk3")!.messages).toEqual([["e"], ["e", "ee", "s", "es"], ["s", "se", "psk"]]);
    expect(parsePattern("NNpsk0")!.messages).toEqual([
      ["psk", "e"],
      ["e", "ee"],
    ]);
    expect(parsePattern("NNpsk0+psk2")!.messages).toEqual([
      ["psk", "e"],
      ["e", "ee", "psk"],
    ]);
    expect(parsePattern("XXpsk3")!.name).toBe("XXpsk3");
    expect(isPskPattern(parsePattern("XXpsk3")!)).toBe(true);
    expect(isPskPattern(parsePattern("XX")!)).toBe(false);
  });

  test("unknown patterns, psk beyond the last message and malformed modifiers are null", () => {
    for (const name of ["", "ZZ", "XXpsk4", "NNpsk3", "XXpsk", "XX+psk1", "xx", "XXpsk3+"]) {
      expect(parsePattern(name)).toBeNull();
    }
  });
});

describe("parseProtocolName", () => {
  test("splits Noise_<pattern>_<dh>_<cipher>_<hash>; anything else is null", () => {
    expect(parseProtocolName("Noise_IK_25519_AESGCM_BLAKE2s")).toMatchObject({
      pattern: { name: "IK" },
      dh: "25519",
      cipher: "AESGCM",
      hash: "BLAKE2s",
    });
    for (const name of [
      "Noise_IK_25519_AESGCM",
      "NoisePSK_IK_25519_AESGCM_BLAKE2s",
      "Noise_ZZ_25519_AESGCM_BLAKE2s",
    ]) {
      expect(parseProtocolName(name)).toBeNull();
    }
  });
});
