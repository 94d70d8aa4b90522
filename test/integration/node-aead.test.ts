/**
 * The Armory path: on Node the agent's ChaChaPoly is node:crypto's ChaCha20-Poly1305 (OpenSSL),
 * chosen only after it agrees with @noble at start-up. Bundles test/integration/node-aead-peer.ts
 * as the Armory agent is bundled (`bun build --target=node`), runs it on Node and checks: the
 * native cipher is selected; it agrees with @noble on random inputs; a tampered tag is
 * ProtocolError(decrypt) on both paths; a native cipher that is missing or disagrees falls back
 * to @noble; every Noise vector (shared/vectors/noise) passes with it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { platform } from "../../platform/index.ts";
import { lacking } from "../helpers/requires.ts";

const NODE = Bun.which("node");
const VECTORS = join(import.meta.dir, "../../../shared/vectors/noise");
const dir = fs.mkdtempSync(join(tmpdir(), "qa-node-aead-"));
const bundle = join(dir, "peer.mjs");
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function output(argv: string[]): Promise<{ code: number | null; text: string }> {
  const c = await platform.spawn(argv, { stdin: "ignore", stderr: "inherit" });
  let text = "";
  for (let x = await c.stdout!.read(); x; x = await c.stdout!.read()) text += new TextDecoder().decode(x);
  return { code: (await c.exited).code, text };
}

describe.skipIf(lacking(NODE ? null : "node"))("native ChaCha20-Poly1305 in the Node bundle", () => {
  beforeAll(async () => {
    const peer = join(import.meta.dir, "node-aead-peer.ts");
    const b = await output([
      process.execPath,
      "build",
      "--target=node",
      "--format=esm",
      peer,
      "--outfile",
      bundle,
    ]);
    expect(b.code).toBe(0);
  }, 60_000);

  test("selected after the start-up check, agrees with @noble, refuses tampering, passes the vectors", async () => {
    const run = await output([NODE!, bundle, VECTORS]);
    expect(run.code).toBe(0);
    const r = JSON.parse(run.text);
    expect(r.runtime).toMatchObject({ platform: "node", bun: false });
    expect(r.selected).toEqual(["AESGCM", "ChaChaPoly"]);
    expect(r.resolvesNative).toBe(true);
    expect(r.chachaAgreement).toBe("ok");
    expect(r.aesAgreement).toBe("ok");
    expect(r.chachaTamper).toBe("ok");
    expect(r.fallbackDisagreeing).toBe(true);
    expect(r.fallbackMissing).toBe(true);
    expect(r.vectors.failures).toEqual([]);
    expect(r.vectors.passed).toBeGreaterThan(800);
    expect(r.vectors.chachaPassed).toBeGreaterThan(200);
  }, 120_000);
});
