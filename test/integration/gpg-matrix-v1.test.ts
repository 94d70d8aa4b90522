/**
 * The split-gpg v1 (`qubes.Gpg`) version matrix (issue 15): the device runs gpg 2.2 or 2.4
 * behind serveGpg1 (the v1 client is qubes-gpg-client, here the TypeScript emulator, so the
 * client's GnuPG only verifies: 2.2 and 2.4 both check every signature with the public key
 * alone). Sign, clear-sign, detach-sign, `-u SUBKEY!`, sign+encrypt, decrypt and `-K` for every
 * matrix key type the device's gpg reads (v5 ed448/cv448: 2.4 only). The option table and its
 * differential test for both versions are gpg-differential.test.ts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";
import { serveGpg1 } from "../../agent/services/gpg/gpg1-service.ts";
import { type Confirming, cleanup, confirming, quietLog, tempDir } from "../fixtures/gpg/env.ts";
import { type Serve1, v1Call } from "../fixtures/gpg/v1-client.ts";
import { type MatrixDevice, makeMatrixDevice, publicHome, run } from "./gpg-matrix-env.ts";
import { KEY_TYPES, type MatrixKey, makeMatrixKeys, usable } from "./gpg-matrix-keys.ts";
import { type GnupgVersion, gnupg22, gnupg24, isUnavailable } from "./gpg-versions.ts";

// Real gpg processes (2.4 through a namespace and chroot) on a loaded 2-core machine.
setDefaultTimeout(30_000);

const got24 = await gnupg24();
if (isUnavailable(got24)) console.warn(`gpg-matrix-v1: skipped, ${got24.reason}`);
const VERSIONS: GnupgVersion[] = isUnavailable(got24) ? [] : [await gnupg22(), got24];

let dir: string;
let c: Confirming;
let keys: MatrixKey[];
const devices = new Map<string, MatrixDevice>();
const verifiers = new Map<string, string>();

beforeAll(async () => {
  if (VERSIONS.length === 0) return;
  dir = tempDir("m1");
  c = await confirming("approve");
  keys = await makeMatrixKeys(VERSIONS[1]!, dir);
  for (const v of VERSIONS) devices.set(v.label, await makeMatrixDevice(v, dir, keys));
  for (const v of VERSIONS) verifiers.set(v.label, await publicHome(v, join(dir, `ver${v.label}`), keys));
}, 300_000);

afterAll(async () => {
  await c?.close();
  for (const d of devices.values())
    for (const h of [d.served, d.primary]) await capture([d.v.gpgconf, "--homedir", h, "--kill", "all"]);
  if (dir) cleanup(dir);
});

const MESSAGE = "split-gpg v1 across GnuPG versions\n";
const enc = (s: string) => new TextEncoder().encode(s);

function serveFor(d: MatrixDevice): Serve1 {
  return (io) =>
    serveGpg1(io, {
      source: "work",
      gnupgHome: d.served,
      gpg: d.v.gpg,
      gpgconf: d.v.gpgconf,
      confirm: c.confirm,
      audit: c.audit,
      log: quietLog,
    });
}

async function call(d: MatrixDevice, args: string[], stdin: Uint8Array = enc(MESSAGE)) {
  const r = await v1Call(serveFor(d), { args, stdin });
  if (r.exit !== 0)
    throw new Error(`v1 ${args.join(" ")}: exit ${r.exit}: ${r.outputs[1]}${r.serviceStderr}`);
  return r;
}

/** Verifies with every client version that reads the key: VALIDSIG of the signing subkey. */
async function verifiedEverywhere(key: MatrixKey, args: string[], input: Uint8Array) {
  for (const v of VERSIONS.filter((x) => usable(key, x))) {
    const r = await run(v, verifiers.get(v.label)!, ["--status-fd", "1", ...args], input);
    expect([v.label, r.out]).toEqual([v.label, expect.stringContaining(`[GNUPG:] VALIDSIG ${key.signFpr} `)]);
  }
}

describe.skipIf(VERSIONS.length === 0)("split-gpg v1 version matrix", () => {
  for (const dv of VERSIONS) {
    const d = () => devices.get(dv.label)!;
    describe(`device gpg ${dv.label}`, () => {
      for (const type of KEY_TYPES) {
        if (type.v5 && dv.label !== "2.4") continue;
        const key = () => d().keys.find((k) => k.type === type)!;

        test(`${type.name}: sign`, async () => {
          const r = await call(d(), ["-u", key().fingerprint, "-s"]);
          await verifiedEverywhere(key(), ["-o", "/dev/null", "--decrypt"], r.raw[0]!);
        });

        test(`${type.name}: clear-sign`, async () => {
          const r = await call(d(), ["-u", key().fingerprint, "--clear-sign"]);
          expect(r.outputs[0]).toStartWith("-----BEGIN PGP SIGNED MESSAGE-----");
          await verifiedEverywhere(key(), ["--verify"], r.raw[0]!);
        });

        test(`${type.name}: detach-sign`, async () => {
          const r = await call(d(), ["-u", key().fingerprint, "-b", "-a"]);
          const base = join(dir, `v1-${dv.label}-${keys.indexOf(key())}`);
          await Bun.write(`${base}.txt`, MESSAGE);
          await Bun.write(`${base}.asc`, r.raw[0]!);
          await verifiedEverywhere(key(), ["--verify", `${base}.asc`, `${base}.txt`], new Uint8Array(0));
        });

        test(`${type.name}: -u SUBKEY!`, async () => {
          const r = await call(d(), ["-u", `${key().signFpr}!`, "-s"]);
          await verifiedEverywhere(key(), ["-o", "/dev/null", "--decrypt"], r.raw[0]!);
        });

        test(`${type.name}: sign+encrypt, then decrypt with a good signature`, async () => {
          const to = ["--trust-model", "always", "-u", key().fingerprint, "-r", key().fingerprint];
          const se = await call(d(), [...to, "-s", "-e"]);
          const dec = await call(d(), ["--status-fd", "3", "-d"], se.raw[0]!);
          expect(dec.outputs[0]).toBe(MESSAGE);
          expect(dec.outputs[2]).toContain(`[GNUPG:] VALIDSIG ${key().signFpr} `);
        });

        test(`${type.name}: decrypt`, async () => {
          const v = VERSIONS.find((x) => usable(key(), x))!;
          const to = ["--trust-model", "always", "-r", key().fingerprint, "--encrypt"];
          const e = await run(v, verifiers.get(v.label)!, to, MESSAGE);
          const dec = await call(d(), ["-d"], e.stdout);
          expect(dec.outputs[0]).toBe(MESSAGE);
        });
      }

      test("-K: subkeys only (sec#), no confirmation", async () => {
        const before = c.input.waits;
        const r = await call(d(), ["-K"], new Uint8Array(0));
        expect(r.outputs[0]!.match(/^sec# /gm)?.length).toBe(d().keys.length);
        expect(r.outputs[0]!.match(/^ssb /gm)?.length).toBe(2 * d().keys.length);
        expect(c.input.waits).toBe(before);
      });
    });
  }
});
