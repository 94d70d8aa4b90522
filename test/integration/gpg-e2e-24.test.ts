/**
 * Issue 15's report, end to end through the whole product: a Fedora/Debian 13 client qube's
 * gpg 2.4.7, in a home that holds only the public key, through the split-gpg2 client's
 * forwarding (`qubes-air call pi-gpg qubes.Gpg2` per connection), sys-remote's daemon, the
 * Noise link and the agent's built-in qubes.Gpg2, to the default device's gpg-agent 2.2.40 (the
 * host's). Before the fix every signing operation failed with "Unusable secret key" and `-K`
 * showed `ssb#`. Each secret-key use is pressed on the simulated button; each signature is
 * verified by gpg 2.4 with the public key alone.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";
import { platform } from "../../platform/index.ts";
import type { Listener } from "../../platform/platform.ts";
import { callWithStreams, type Stack, startStack } from "./gpg-e2e-stack.ts";
import { publicHome, run, runOk } from "./gpg-matrix-env.ts";
import { KEY_TYPES } from "./gpg-matrix-keys.ts";
import { type GnupgVersion, gnupg24, isUnavailable } from "./gpg-versions.ts";

setDefaultTimeout(60_000);

const got24 = await gnupg24();
const v24: GnupgVersion | null = isUnavailable(got24) ? null : got24;
if (isUnavailable(got24)) console.warn(`gpg-e2e-24: skipped, ${got24.reason}`);

let stack: Stack;
let dir: string;
let client: string;
let verifier: string;
let fingerprint: string;
let listener: Listener;
const MESSAGE = "gpg 2.4 in the client qube, gpg-agent 2.2 on the device\n";

beforeAll(async () => {
  if (!v24) return;
  stack = await startStack({ gpg: true });
  // Under /tmp: the 2.4 root sees the host's /tmp at the same path.
  dir = mkdtempSync("/tmp/qa-e24-");
  // gpg-setup --generate's key: ed25519 with an ed25519 signing and a cv25519 encryption subkey.
  const asKey = { publicKey: stack.publicKey, type: KEY_TYPES[0]! };
  client = await publicHome(v24, join(dir, "c"), [asKey]);
  verifier = await publicHome(v24, join(dir, "v"), [asKey]);
  const listed = await runOk(v24, client, ["--with-colons", "--list-keys"]);
  fingerprint = /^fpr:+([0-9A-F]+):/m.exec(listed.out)![1]!;
  const dirs = await capture([v24.gpgconf, "--homedir", client, "--list-dirs", "agent-socket"]);
  listener = await platform.unixListen(
    decodeURIComponent(new TextDecoder().decode(dirs.stdout).trim()),
    (conn) => {
      void callWithStreams(stack, "qubes.Gpg2", "work", { stdin: conn, stdout: conn }).finally(() =>
        conn.close(),
      );
    },
  );
}, 120_000);

afterAll(async () => {
  await listener?.close();
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the 2.4 client while the test presses the button `presses` times. */
async function pressed(presses: number, args: string[], input: string | Uint8Array = MESSAGE) {
  const running = run(v24!, client, args, input);
  for (let i = 0; i < presses; i++) await stack.answerNextPrompt("approve");
  return running;
}

async function validSig(args: string[], input: string | Uint8Array) {
  const v = await run(v24!, verifier, ["--status-fd", "1", ...args], input);
  expect(v.out).toMatch(/\[GNUPG:\] VALIDSIG [0-9A-F]+ .* ([0-9A-F]+)\n/);
  expect(v.out).toContain(` ${fingerprint}\n`);
}

describe.skipIf(!v24)("gpg 2.4.7 client -> device gpg-agent 2.2.40, the whole stack", () => {
  test("-K: the subkeys are usable (ssb, not ssb#)", async () => {
    const r = await runOk(v24!, client, ["-K"]);
    expect(r.out).toMatch(/^sec# /m);
    expect(r.out.match(/^ssb /gm)?.length).toBe(2);
  });

  test("sign", async () => {
    const r = await pressed(1, ["--sign"]);
    expect(r.status).toBe(0);
    await validSig(["-o", "/dev/null", "--decrypt"], r.stdout);
  });

  test("clear-sign", async () => {
    const r = await pressed(1, ["--clear-sign"]);
    expect(r.status).toBe(0);
    await validSig(["--verify"], r.stdout);
  });

  test("detach-sign with -u SUBKEY!", async () => {
    const sub = (await runOk(v24!, client, ["--with-colons", "--fixed-list-mode", "-k"])).out;
    const signFpr = /^sub:(?:[^:]*:){10}[a-z]*s[a-z]*:[^\n]*\nfpr:+([0-9A-F]+):/m.exec(sub)![1]!;
    const r = await pressed(1, ["-u", `${signFpr}!`, "--armor", "--detach-sign"]);
    expect(r.status).toBe(0);
    await Bun.write(join(dir, "m.txt"), MESSAGE);
    await Bun.write(join(dir, "m.asc"), r.stdout);
    await validSig(["--verify", join(dir, "m.asc"), join(dir, "m.txt")], "");
  });

  test("sign+encrypt, then decrypt", async () => {
    const se = await pressed(1, ["--trust-model", "always", "-r", fingerprint, "--sign", "--encrypt"]);
    expect(se.status).toBe(0);
    const dec = await pressed(1, ["--status-fd", "2", "--decrypt"], se.stdout);
    expect([dec.status, dec.out]).toEqual([0, MESSAGE]);
    expect(dec.err).toContain(`[GNUPG:] VALIDSIG `);
  });
});
