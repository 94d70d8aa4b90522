/**
 * The Node side of test/integration/node-aead.test.ts: bundled with `bun build --target=node`
 * like the Armory agent and run on Node, where node:crypto has ChaCha20-Poly1305. Runs the
 * native-vs-@noble checks there and prints one JSON line of results:
 *
 *   node node-aead-peer.mjs VECTORS_DIR
 *
 * Each check is "ok" or the text of what failed. Must never be imported by production code.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CipherFunctions } from "../../core/noise/crypto.ts";
import { aesGcmNoble, chachaPolyNoble } from "../../core/noise/crypto-noble.ts";
import { makeResolver } from "../../core/noise/suites.ts";
import { platform } from "../../platform/index.ts";
import { aesGcmNative, chachaPolyNative, checkedCiphers, nativeCiphers } from "../../platform/native-aead.ts";
import { nativeDh } from "../../platform/native-dh.ts";
import { assertAgreement, assertTamperRefused } from "../helpers/aead-agreement.ts";
import { type NoiseVector, runVector } from "../vectors/noise-vectors.ts";

const outcome = (check: () => void): string => {
  try {
    check();
    return "ok";
  } catch (error) {
    return String(error instanceof Error ? error.message : error).slice(0, 2000);
  }
};

/** The native ChaCha with one ciphertext bit wrong: the start-up check must refuse it. */
const disagreeing: CipherFunctions = {
  name: "ChaChaPoly",
  encrypt(k, n, ad, pt) {
    const out = chachaPolyNative.encrypt(k, n, ad, pt);
    out[0]! ^= 1;
    return out;
  },
  decrypt: (k, n, ad, ct) => chachaPolyNative.decrypt(k, n, ad, ct),
};
const missing: CipherFunctions = {
  name: "ChaChaPoly",
  encrypt: () => {
    throw new Error("Unknown cipher");
  },
  decrypt: () => {
    throw new Error("Unknown cipher");
  },
};

function vectors(dir: string, ciphers: readonly CipherFunctions[]) {
  let passed = 0;
  let chachaPassed = 0;
  const failures: string[] = [];
  for (const file of ["snow.json", "cacophony.json"]) {
    const all = (JSON.parse(readFileSync(join(dir, file), "utf8")) as { vectors: NoiseVector[] }).vectors;
    for (const v of all) {
      const result = runVector(v, ciphers, nativeDh());
      if (result.status === "failed") failures.push(`${v.protocol_name}: ${result.reason}`);
      if (result.status !== "passed") continue;
      passed++;
      if (v.protocol_name.includes("_ChaChaPoly_")) chachaPassed++;
    }
  }
  return { passed, chachaPassed, failures };
}

const fallback = (candidate: CipherFunctions) =>
  makeResolver(checkedCiphers([[candidate, chachaPolyNoble]])).cipher("ChaChaPoly") === chachaPolyNoble;

console.log(
  JSON.stringify({
    runtime: { platform: platform.name, bun: "Bun" in globalThis, openssl: process.versions.openssl },
    selected: nativeCiphers().map((c) => c.name),
    resolvesNative: makeResolver(nativeCiphers()).cipher("ChaChaPoly") === chachaPolyNative,
    chachaAgreement: outcome(() => assertAgreement(chachaPolyNative, chachaPolyNoble, 300)),
    aesAgreement: outcome(() => assertAgreement(aesGcmNative, aesGcmNoble, 100)),
    chachaTamper: outcome(() => assertTamperRefused([chachaPolyNative, chachaPolyNoble], 200)),
    fallbackDisagreeing: fallback(disagreeing),
    fallbackMissing: fallback(missing),
    vectors: vectors(process.argv[2]!, [chachaPolyNative, aesGcmNative]),
  }),
);
