/**
 * `bun run vectors -- FILE...`: runs every vector in cacophony/snow-format JSON files whose
 * protocol the project implements, prints one line per failure and a closing
 * `N passed, M failed, K skipped` line; exits 1 if any failed, 2 on a usage error.
 */
import { readFileSync } from "node:fs";
import { nativeCiphers } from "../../platform/native-aead.ts";
import { nativeDh } from "../../platform/native-dh.ts";
import { type NoiseVector, runVector } from "./noise-vectors.ts";

const args = process.argv.slice(2).filter((a) => a !== "--");
const verbose = args.includes("--verbose");
const files = args.filter((a) => !a.startsWith("--"));
if (args.includes("--help") || files.length === 0) {
  console.log(
    "usage: bun run vectors -- [--verbose] FILE.json...\n\nRuns Noise test vectors (cacophony/snow JSON format).",
  );
  process.exit(files.length === 0 && !args.includes("--help") ? 2 : 0);
}

let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of files) {
  let vectors: NoiseVector[];
  try {
    vectors = (JSON.parse(readFileSync(file, "utf8")) as { vectors: NoiseVector[] }).vectors;
  } catch (error) {
    console.error(`cannot read ${file}: ${(error as Error).message}`);
    process.exit(2);
  }
  for (const vector of vectors) {
    const outcome = runVector(vector, nativeCiphers(), nativeDh());
    if (outcome.status === "passed") passed++;
    else if (outcome.status === "skipped") {
      skipped++;
      if (verbose) console.log(`skip ${vector.protocol_name}: ${outcome.reason}`);
    } else {
      failed++;
      console.log(`FAIL ${vector.protocol_name}: ${outcome.reason}`);
    }
  }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
