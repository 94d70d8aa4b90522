/**
 * Gate on the Noise test vectors in shared/vectors/noise: every IK, XX, KK, XK vector (and their
 * psk variants) for both link suites must pass, with the portable and with the native AEAD.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { aesGcmNative } from "../../platform/native-aead.ts";
import { dh25519Native } from "../../platform/native-dh.ts";
import { type NoiseVector, runVector } from "./noise-vectors.ts";

const VECTORS = join(import.meta.dir, "../../../shared/vectors/noise");
const load = (name: string): NoiseVector[] =>
  (JSON.parse(readFileSync(join(VECTORS, name), "utf8")) as { vectors: NoiseVector[] }).vectors;

const REQUIRED = /^Noise_(IK|XX|KK|XK)(psk\d(\+psk\d)*)?_25519_(ChaChaPoly|AESGCM)_BLAKE2s$/;

for (const file of ["snow.json", "cacophony.json"]) {
  describe(file, () => {
    const vectors = load(file);
    for (const [label, ciphers, dh] of [
      ["noble", [], null],
      ["native AES-GCM and X25519", [aesGcmNative], dh25519Native],
    ] as const) {
      test(`every implemented vector passes (${label})`, () => {
        const failures: string[] = [];
        let passed = 0;
        for (const v of vectors) {
          const outcome = runVector(v, ciphers, dh);
          if (outcome.status === "failed") failures.push(`${v.protocol_name}: ${outcome.reason}`);
          if (outcome.status === "passed") passed++;
        }
        expect(failures).toEqual([]);
        expect(passed).toBeGreaterThan(400);
      }, 60_000); // ~900 handshakes in pure JS: seconds on a loaded 2-core machine
    }
    test("the link's patterns are all present and pass", () => {
      const required = vectors.filter((v) => REQUIRED.test(v.protocol_name));
      const names = required.map((v) => v.protocol_name);
      for (const suite of ["ChaChaPoly", "AESGCM"]) {
        for (const p of ["IK", "XX", "KK", "XK"])
          expect(names).toContain(`Noise_${p}_25519_${suite}_BLAKE2s`);
        expect(names.some((n) => n.startsWith("Noise_XXpsk") && n.includes(suite))).toBe(true);
      }
      for (const v of required) expect(runVector(v)).toEqual({ status: "passed" });
    }, 60_000);
  });
}

test("a corrupted vector fails rather than passing silently", () => {
  const v = load("cacophony.json").find((x) => x.protocol_name === "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s")!;
  const last = v.messages.at(-1)!;
  const flipped = (Number.parseInt(last.ciphertext.slice(0, 2), 16) ^ 1).toString(16).padStart(2, "0");
  const broken = {
    ...v,
    messages: [...v.messages.slice(0, -1), { ...last, ciphertext: flipped + last.ciphertext.slice(2) }],
  };
  expect(runVector(broken).status).toBe("failed");
});
