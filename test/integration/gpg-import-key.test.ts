/**
 * qubes.GpgImportKey through the whole stack (gpg-e2e-stack.ts, every part a real process), as
 * upstream's `qubes-gpg-import-key FILE` uses it: the key data on the call's stdin. A public
 * key lands in the device's served keyring after a press, with the fingerprint on the prompt;
 * a denied press imports nothing; secret keys, secret subkeys (also hidden after a public key)
 * and compressed data are refused with no prompt and gpg never runs on them; every import and
 * refusal is in the verified audit log.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import { tempDir } from "../fixtures/gpg/env.ts";
import { v1Call } from "../fixtures/gpg/v1-client.ts";
import { callWithStreams, run, type Stack, spawnCall, startStack, UID } from "./gpg-e2e-stack.ts";

setDefaultTimeout(90_000);

let stack: Stack;
let keys: string;
let fpr: string;
let fpr2: string;
const data: Record<string, Uint8Array> = {};
const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" };

async function gpg(home: string, args: string[], input?: Uint8Array): Promise<Uint8Array> {
  const p = Bun.spawn(
    [
      "gpg",
      "--homedir",
      home,
      "--batch",
      "--no-tty",
      "--pinentry-mode",
      "loopback",
      "--passphrase",
      "",
      ...args,
    ],
    {
      stdin: input ?? "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env,
    },
  );
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).bytes(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`gpg ${args.join(" ")}: ${err}`);
  return out;
}

const fprOf = async (home: string, uid: string) =>
  /^fpr:+([0-9A-F]+):/m.exec(
    new TextDecoder().decode(await gpg(home, ["--with-colons", "--list-keys", uid])),
  )![1]!;

beforeAll(async () => {
  stack = await startStack({ gpg: true });
  keys = tempDir("imp");
  await gpg(keys, ["--quick-gen-key", "Alice <alice@example.invalid>", "ed25519", "sign", "never"]);
  await gpg(keys, ["--quick-gen-key", "Bob <bob@example.invalid>", "ed25519", "sign", "never"]);
  fpr = await fprOf(keys, "alice@example.invalid");
  fpr2 = await fprOf(keys, "bob@example.invalid");
  data.alice = await gpg(keys, ["--export", "--armor", fpr]);
  data.bob = await gpg(keys, ["--export", fpr2]);
  data.secret = await gpg(keys, ["--export-secret-keys", "--armor", fpr2]);
  data.secretSub = await gpg(keys, ["--export-secret-subkeys", fpr2]);
  const hidden = new Uint8Array(data.bob.length + data.secretSub.length);
  hidden.set(data.bob);
  hidden.set(data.secretSub, data.bob.length);
  data.hidden = hidden;
  data.compressed = await gpg(keys, ["--compress-algo", "zlib", "--store"], data.secretSub);
  // Red team I1: Bob's key packet with bytes after its key material (gpg would import Bob under
  // his real fingerprint while a hash over the padded body named another on the prompt).
  const [head, ...rest] = packets(data.bob);
  const first = head![1];
  const hl = 1 + (1 << (first[0]! & 3));
  const body = join2([first.subarray(hl), new Uint8Array(20).fill(0x41)]);
  data.padded = join2([
    Uint8Array.of(0x99, body.length >> 8, body.length & 255),
    body,
    ...rest.map(([, p]) => p),
  ]);
}, 120_000);

afterAll(async () => {
  await run(["gpgconf", "--homedir", keys, "--kill", "all"], env).catch(() => {});
  if (keys) rmSync(keys, { recursive: true, force: true });
  await stack?.close();
});

async function importKey(input: Uint8Array, source = "work") {
  const p = spawnCall(stack, "qubes.GpgImportKey", source);
  p.stdin.write(input);
  await p.stdin.end();
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

const servedKeys = async () =>
  new TextDecoder().decode(await gpg(join(stack.stateDir, "gnupg"), ["--with-colons", "--list-keys"]));
const servedSecret = async () =>
  new TextDecoder().decode(await gpg(join(stack.stateDir, "gnupg"), ["--with-colons", "--list-secret-keys"]));
const prompts = () => stack.logged(/confirm-request /).length;
const audit = () => {
  const v = verifyAuditLog(readFileSync(join(stack.stateDir, "audit.log"), "utf-8"));
  if (!v.ok) throw new Error("audit log does not verify");
  return v.records.filter((r) => r.service === "qubes.GpgImportKey");
};

describe("qubes.GpgImportKey: public keys only, confirmed, logged", () => {
  test("a denied press imports nothing", async () => {
    const running = importKey(data.alice!);
    const line = await stack.answerNextPrompt("deny");
    expect(line).toContain(`client=work service=qubes.GpgImportKey operation=import`);
    const r = await running;
    expect(r.code).toBe(1);
    expect(r.err).toContain("not confirmed");
    expect(await servedKeys()).not.toContain(fpr);
  });

  test("a public key is imported after the press; the prompt names its fingerprint, never its user ID", async () => {
    // The denial above starts a 5 s cooldown for "work": another client imports.
    const running = importKey(data.alice!, "mail");
    const line = await stack.answerNextPrompt("approve");
    expect(line).toContain(fpr);
    expect(line).not.toContain("alice");
    const r = await running;
    expect([r.code, r.err]).toEqual([0, expect.stringContaining("imported: 1")]);
    expect(await servedKeys()).toContain(fpr);
    const rec = audit();
    expect(rec.some((x) => x.client === "mail" && x.result === "requested" && x.key.includes(fpr))).toBe(
      true,
    );
    expect(rec.some((x) => x.client === "mail" && x.result === "exit 0")).toBe(true);
  });

  for (const [name, key, reason] of [
    ["an armored secret key", "secret", "secret-key"],
    ["secret subkeys", "secretSub", "secret-key"],
    ["a secret subkey hidden after a public key", "hidden", "secret-key"],
    ["compressed data wrapping secret subkeys", "compressed", "packet-not-allowed"],
    ["a key packet with bytes after its key material (red team I1)", "padded", "malformed"],
  ] as const) {
    test(`${name}: refused without a prompt; gpg never sees it`, async () => {
      const before = prompts();
      const r = await importKey(data[key]!, "mail");
      expect(r.code).toBe(1);
      expect(r.err).toStartWith("qubes-air: qubes.GpgImportKey: ");
      expect(prompts()).toBe(before);
      expect(await servedKeys()).not.toContain(fpr2);
      expect(await servedSecret()).not.toContain(fpr2);
      expect(audit().at(-1)).toMatchObject({ client: "mail", decision: "refused", result: reason });
    });
  }
});

/** Old-format packets of binary OpenPGP data: [tag, whole packet]. */
function packets(d: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let at = 0;
  while (at < d.length) {
    const h = d[at]!;
    if ((h & 0xc0) !== 0x80) throw new Error("test expects old-format packets from gpg --export");
    const n = 1 << (h & 3);
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + d[at + 1 + i]!;
    out.push([(h >> 2) & 0x0f, d.subarray(at, at + 1 + n + len)]);
    at += 1 + n + len;
  }
  return out;
}

const join2 = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe("qubes.GpgImportKey: red-team attacks on the device's own key", () => {
  const served = () => join(stack.stateDir, "gnupg");
  const deviceFpr = async () => fprOf(served(), "device@example.invalid");

  test("I2: the device's key with an attacker's subkey grafted on: the press shows the device's fingerprint, and gpg keeps the subkey out", async () => {
    const device = await deviceFpr();
    // The attacker's key with a signing subkey; its binding signature is by the attacker's primary.
    await gpg(keys, ["--quick-gen-key", "Mallory <mallory@example.invalid>", "ed25519", "sign", "never"]);
    const mallory = await fprOf(keys, "mallory@example.invalid");
    await gpg(keys, ["--quick-add-key", mallory, "ed25519", "sign", "never"]);
    const malloryPackets = packets(await gpg(keys, ["--export", mallory]));
    const subkeyAt = malloryPackets.findIndex(([t]) => t === 14);
    const graft = malloryPackets.slice(subkeyAt, subkeyAt + 2).map(([, p]) => p); // subkey + binding
    const subFpr = /^sub:[^\n]*\nfpr:+([0-9A-F]+):/m.exec(
      new TextDecoder().decode(await gpg(keys, ["--with-colons", "--list-keys", mallory])),
    )![1]!;
    const deviceKey = await gpg(served(), ["--export", device]);
    const running = importKey(join2([deviceKey, ...graft]), "vault");
    const line = await stack.answerNextPrompt("approve");
    expect(line).toContain(device); // what the person sees: their own key
    const r = await running;
    expect(r.code).toBe(0);
    const listed = new TextDecoder().decode(
      await gpg(served(), ["--with-colons", "--with-subkey-fingerprints", "--list-keys", device]),
    );
    expect(listed).not.toContain(subFpr);
    expect(await deviceFpr()).toBe(device);
  });

  test("I3: a key with the device's user ID does not take over its signatures", async () => {
    const device = await deviceFpr();
    const shadowHome = tempDir("shadow");
    try {
      await gpg(shadowHome, ["--quick-gen-key", UID, "ed25519", "sign", "never"]);
      const shadow = await fprOf(shadowHome, "device@example.invalid");
      const running = importKey(await gpg(shadowHome, ["--export", shadow]), "dev");
      await stack.answerNextPrompt("approve");
      expect((await running).code).toBe(0);
      expect(await servedKeys()).toContain(shadow);
      // A v1 signature asked for by that user ID is still made with the device's key.
      const data = new TextEncoder().encode("release 1.0\n");
      const signing = v1Call((io) => callWithStreams(stack, "qubes.Gpg", "dev", io), {
        args: ["-u", "device@example.invalid", "-b", "-a"],
        stdin: data,
      });
      await stack.answerNextPrompt("approve");
      const sig = await signing;
      expect(sig.exit).toBe(0);
      const dir = tempDir("shadow-verify");
      await Bun.write(join(dir, "data"), data);
      await Bun.write(join(dir, "data.sig"), sig.outputs[0]!);
      const status = new TextDecoder().decode(
        await gpg(served(), ["--status-fd", "1", "--verify", join(dir, "data.sig"), join(dir, "data")]),
      );
      // VALIDSIG names the signing (sub)key, then its primary last: the device's.
      expect(/^\[GNUPG:\] VALIDSIG .* ([0-9A-F]{40})$/m.exec(status)?.[1]).toBe(device);
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await run(["gpgconf", "--homedir", shadowHome, "--kill", "all"], env).catch(() => {});
      rmSync(shadowHome, { recursive: true, force: true });
    }
  });
});
