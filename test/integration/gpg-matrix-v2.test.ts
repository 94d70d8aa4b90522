/**
 * The split-gpg2 (`qubes.Gpg2`) version matrix (issue 15): client gpg 2.2 and 2.4 × device
 * gpg-agent 2.2 and 2.4, for sign, clear-sign, detach-sign, sign+encrypt, decrypt, `-u SUBKEY!`
 * and `-K`, with rsa3072, ed25519/cv25519, nistp256, brainpoolP256r1 and a v5 ed448/cv448 key
 * (2.4 on both ends only: 2.2 does not read v5 keys). Every signature is verified with the
 * public key alone. Real processes: stock gpg of each version, serveGpg2, the device's real
 * gpg-agent; GnuPG 2.4 runs in the cached Debian 13 root (gpg-versions.ts).
 *
 * The Assuan lines that differ between the versions are named in the tests of each pair and
 * checked on the recordings (docs/split-gpg.md "GnuPG 2.2 and 2.4").
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";
import { type Confirming, cleanup, confirming, tempDir } from "../fixtures/gpg/env.ts";
import {
  type MatrixClient,
  type MatrixDevice,
  makeMatrixClient,
  makeMatrixDevice,
  publicHome,
  run,
  runOk,
} from "./gpg-matrix-env.ts";
import { KEY_TYPES, type MatrixKey, makeMatrixKeys, usable } from "./gpg-matrix-keys.ts";
import { type GnupgVersion, gnupg22, gnupg24, isUnavailable } from "./gpg-versions.ts";

const v22 = await gnupg22();
// Real gpg processes (2.4 through a namespace and chroot) on a loaded 2-core machine.
setDefaultTimeout(30_000);

const got24 = await gnupg24();
const v24 = isUnavailable(got24) ? null : got24;
if (!v24) console.warn(`gpg-matrix: skipped, ${isUnavailable(got24) ? got24.reason : ""}`);
const VERSIONS: GnupgVersion[] = v24 ? [v22, v24] : [];

let dir: string;
let c: Confirming;
let keys: MatrixKey[];
const devices = new Map<string, MatrixDevice>();
const clients = new Map<string, MatrixClient>();
const verifiers = new Map<string, string>();

beforeAll(async () => {
  if (!v24) return;
  dir = tempDir("mx");
  c = await confirming("approve");
  keys = await makeMatrixKeys(v24, dir);
  for (const v of VERSIONS) devices.set(v.label, await makeMatrixDevice(v, dir, keys));
  for (const v of VERSIONS) verifiers.set(v.label, await publicHome(v, join(dir, `ver${v.label}`), keys));
  for (const cv of VERSIONS)
    for (const dv of VERSIONS)
      clients.set(`${cv.label}>${dv.label}`, await makeMatrixClient(cv, devices.get(dv.label)!, dir, c));
}, 300_000);

afterAll(async () => {
  for (const cl of clients.values()) await cl.close();
  await c?.close();
  for (const d of devices.values())
    for (const h of [d.served, d.primary]) await capture([d.v.gpgconf, "--homedir", h, "--kill", "all"]);
  if (dir) cleanup(dir);
});

const MESSAGE = "split-gpg2 across GnuPG versions\nsecond line\n";

/** `[GNUPG:] VALIDSIG <signing subkey fpr> ...` from the verifier of the client's version. */
function expectValidSig(status: string, key: MatrixKey) {
  expect(status).toContain("[GNUPG:] GOODSIG");
  expect(status).toMatch(new RegExp(`\\[GNUPG:\\] VALIDSIG ${key.signFpr} .* ${key.fingerprint}\\n`));
}

/** What differs on the wire for this pair, in the words of docs/split-gpg.md. */
function wireNote(cv: GnupgVersion, dv: GnupgVersion): string {
  const client =
    cv.label === "2.4"
      ? "client sends HAVEKEY --list=1000 (answered by the device) and KEYINFO <grip> before signing"
      : "client sends HAVEKEY <grips> and KEYINFO <grip> for -K";
  const agent =
    dv.label === "2.2"
      ? "agent 2.2 forbids KEYINFO on the restricted socket: served keygrips go to the normal one"
      : "agent 2.4 answers KEYINFO on both sockets: served keygrips go to the normal one";
  return `${client}; ${agent}`;
}

const pairs = VERSIONS.flatMap((cv) => VERSIONS.map((dv) => [cv, dv] as const));

describe.skipIf(!v24)("split-gpg2 version matrix", () => {
  for (const [cv, dv] of pairs) {
    const pair = `client gpg ${cv.label} → device gpg-agent ${dv.label}`;
    const cl = () => clients.get(`${cv.label}>${dv.label}`)!;
    const verifier = () => verifiers.get(cv.label)!;

    describe(`${pair} [${wireNote(cv, dv)}]`, () => {
      for (const type of KEY_TYPES) {
        if (type.v5 && (cv.label !== "2.4" || dv.label !== "2.4")) continue;
        const key = () => cl().keys.find((k) => k.type === type)!;

        test(`${type.name}: sign`, async () => {
          const r = await runOk(cv, cl().home, ["-u", key().fingerprint, "--sign"], MESSAGE);
          const v = await run(cv, verifier(), ["--status-fd", "2", "--decrypt"], r.stdout);
          expect(v.out).toBe(MESSAGE);
          expectValidSig(v.err, key());
        });

        test(`${type.name}: clear-sign`, async () => {
          const r = await runOk(cv, cl().home, ["-u", key().fingerprint, "--clear-sign"], MESSAGE);
          expect(r.out).toStartWith("-----BEGIN PGP SIGNED MESSAGE-----");
          const v = await run(cv, verifier(), ["--status-fd", "1", "--verify"], r.stdout);
          expectValidSig(v.out, key());
        });

        test(`${type.name}: detach-sign`, async () => {
          const r = await runOk(
            cv,
            cl().home,
            ["-u", key().fingerprint, "--armor", "--detach-sign"],
            MESSAGE,
          );
          const base = join(dir, `det-${cv.label}-${dv.label}-${keys.indexOf(key())}`);
          await Bun.write(`${base}.txt`, MESSAGE);
          await Bun.write(`${base}.asc`, r.stdout);
          const v = await run(cv, verifier(), ["--status-fd", "1", "--verify", `${base}.asc`, `${base}.txt`]);
          expectValidSig(v.out, key());
        });

        test(`${type.name}: -u SUBKEY! (the signing subkey itself)`, async () => {
          const r = await runOk(cv, cl().home, ["-u", `${key().signFpr}!`, "--sign"], MESSAGE);
          const v = await run(cv, verifier(), ["--status-fd", "2", "--decrypt"], r.stdout);
          expectValidSig(v.err, key());
        });

        test(`${type.name}: sign+encrypt, then decrypt and verify`, async () => {
          const to = ["--trust-model", "always", "-u", key().fingerprint, "-r", key().fingerprint];
          const se = await runOk(cv, cl().home, [...to, "--sign", "--encrypt"], MESSAGE);
          const dec = await runOk(cv, cl().home, ["--status-fd", "2", "--decrypt"], se.stdout);
          expect(dec.out).toBe(MESSAGE);
          expectValidSig(dec.err, key());
          expect(dec.err).toContain(`[GNUPG:] DECRYPTION_KEY ${key().encrFpr} `);
        });

        test(`${type.name}: decrypt`, async () => {
          const to = ["--trust-model", "always", "-r", key().fingerprint, "--encrypt"];
          const enc = await runOk(cv, verifier(), to, MESSAGE);
          const dec = await runOk(cv, cl().home, ["--decrypt"], enc.stdout);
          expect(dec.out).toBe(MESSAGE);
        });
      }

      test("-K: every served subkey usable (ssb, never ssb#), every primary a stub (sec#)", async () => {
        const r = await runOk(cv, cl().home, ["-K"]);
        const n = cl().keys.length;
        expect(r.out.match(/^sec# /gm)?.length).toBe(n);
        expect(r.out.match(/^ssb /gm)?.length).toBe(2 * n);
        expect(r.out).not.toMatch(/^ssb[#>]/m);
        // No HAVEKEY fallback warning and no error. A 2.4 client does warn that a 2.2 agent is
        // older (GETINFO version is the agent's own answer, relayed as it is).
        const older =
          /^gpg: (WARNING: server 'gpg-agent' is older than us .*|Note: Outdated servers .*|Note: Use the command "gpgconf --kill all" .*)$/;
        const other = r.err
          .split("\n")
          .filter((l) => l !== "" && !(cv.label === "2.4" && dv.label === "2.2" && older.test(l)));
        expect(other).toEqual([]);
      });

      test("Assuan lines: what this client sent and what reached the agent", async () => {
        await cl().served.settled();
        const said = cl().said();
        const grips = await servedGrips(cl());
        // Booleans, so a failure does not print the whole (binary) conversation.
        // Both versions ask KEYINFO <grip>; only 2.4 takes the HAVEKEY --list fast path, and
        // 2.4 always asks SCD SERIALNO before an operation (2.2 does not in this setup).
        expect(/^KEYINFO [0-9A-F]{40}$/m.test(said)).toBe(true);
        expect(/^HAVEKEY --list=1000$/m.test(said)).toBe(cv.label === "2.4");
        if (cv.label === "2.4") expect(/^SCD SERIALNO$/m.test(said)).toBe(true);
        const toAgent = cl().restricted.sent() + cl().normal.sent();
        // Answered by the device, never the agent's business.
        expect(/HAVEKEY --list|^SCD /m.test(toAgent)).toBe(false);
        // KEYINFO only on the normal socket, and only for served subkeys.
        expect(cl().restricted.sent().includes("KEYINFO")).toBe(false);
        const asked = [
          ...cl()
            .normal.sent()
            .matchAll(/^KEYINFO ([0-9A-F]{40})$/gm),
        ].map((m) => m[1]!);
        expect(asked.length).toBeGreaterThan(0);
        for (const g of asked) expect(grips.subkeys).toContain(g);
        expect(grips.primaries.filter((g) => toAgent.includes(g))).toEqual([]);
      });
    });
  }

  test("GnuPG 2.2 does not read the v5 key (why those cells are 2.4 only)", async () => {
    const v5 = keys.find((k) => k.type.v5)!;
    expect(usable(v5, v22)).toBe(false);
    const home = await publicHome(v22, join(dir, "v5on22"), []);
    const r = await run(v22, home, ["--import"], v5.publicKey);
    expect(r.err).not.toContain("imported: 1");
  });
});

async function servedGrips(cl: MatrixClient) {
  const listing = await runOk(cl.device.v, cl.device.served, ["--with-colons", "--with-keygrip", "-K"]);
  const primaries: string[] = [];
  const subkeys: string[] = [];
  let inPrimary = false;
  for (const l of listing.out.split("\n")) {
    if (l.startsWith("sec:")) inPrimary = true;
    else if (l.startsWith("ssb:")) inPrimary = false;
    else if (l.startsWith("grp:")) (inPrimary ? primaries : subkeys).push(l.split(":")[9]!);
  }
  return { primaries, subkeys };
}
