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
import { run, type Stack, spawnCall, startStack } from "./gpg-e2e-stack.ts";

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
