/**
 * Unattended signing approved by another qube, through the whole stack (every part a real
 * process, gpg-e2e-stack.ts): stock gpg in `build-keys` signs through qubes.Gpg2; `build-logs`
 * calls qubesair.Approve+build-keys, which the device's policy allows for that pair only.
 * Shown: signatures pass without a press only after the approver's call, only for the named
 * client, only up to the granted count and only before the time bound; a digest grant passes
 * only the matching digest; a qube the policy does not name (a compromised sys-remote's forged
 * name included, as far as the device can tell) gets exit 126 and no grant; every grant and
 * every use is in the verified audit log, the use with decision "approver:build-logs".
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadKeyring } from "../../agent/services/gpg/gpg-tools.ts";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import { assuanSession } from "../fixtures/gpg/stack.ts";
import { v1Call } from "../fixtures/gpg/v1-client.ts";
import {
  callWithStreams,
  clientHome,
  forwardAgentSocket,
  gpgRun,
  run,
  type Stack,
  spawnCall,
  startStack,
} from "./gpg-e2e-stack.ts";

setDefaultTimeout(90_000);

let stack: Stack;
let keys: { home: string };
let other: { home: string };
const forwarders: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  stack = await startStack({
    gpg: true,
    policy: { "30-build.policy": "qubesair.Approve  +build-keys  build-logs  @anyvm  allow\n" },
  });
  keys = await clientHome(stack, "keys");
  other = await clientHome(stack, "other");
  forwarders.push(await forwardAgentSocket(stack, keys.home, "build-keys"));
  forwarders.push(await forwardAgentSocket(stack, other.home, "work"));
}, 120_000);

afterAll(async () => {
  for (const f of forwarders) await f.close();
  await stack?.close();
});

async function approve(source: string, client: string, line: string) {
  const p = spawnCall(stack, `qubesair.Approve+${client}`, source);
  p.stdin.write(line);
  await p.stdin.end();
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

const prompts = () => stack.logged(/confirm-request /).length;
const sign = (home: string) => gpgRun(home, ["--armor", "--detach-sign"], "build 42\n");

/**
 * Signs in `home` and expects a prompt for it, which the test presses: the press was needed.
 * (Approve, not deny: a denial starts the client's cooldown, which would refuse the next
 * request without a prompt.)
 */
async function expectPress(home: string) {
  const before = prompts();
  const running = sign(home);
  const line = await stack.answerNextPrompt("approve");
  const r = await running;
  expect(r.code).toBe(0);
  expect(prompts()).toBe(before + 1);
  return line;
}

async function expectNoPress(home: string) {
  const before = prompts();
  const r = await sign(home);
  expect([r.code, r.stderr]).toEqual([0, expect.any(String)]);
  expect(r.stdout).toContain("BEGIN PGP SIGNATURE");
  expect(prompts()).toBe(before);
}

const audit = () => {
  const v = verifyAuditLog(readFileSync(join(stack.stateDir, "audit.log"), "utf-8"));
  if (!v.ok) throw new Error("audit log does not verify");
  return v.records;
};

describe("qubesair.Approve: another qube stands in for the press", () => {
  test("before any approval, the client's signature waits for the press", async () => {
    await expectPress(keys.home);
  });

  test("only the approver the policy names may grant; the client cannot approve itself", async () => {
    for (const [source, client] of [
      ["mallory", "build-keys"],
      ["build-keys", "build-keys"],
      ["build-logs", "work"],
    ] as const) {
      const r = await approve(source, client, "count 5\n");
      expect([source, client, r.code]).toEqual([source, client, 126]);
    }
    await expectPress(keys.home);
  });

  test("a count grant: N signatures without a press, for the named client only; then the press again", async () => {
    const r = await approve("build-logs", "build-keys", "count 2 600\n");
    expect(r).toEqual({
      code: 0,
      out: expect.stringContaining("granted: the next 2 signature(s) of build-keys"),
      err: "",
    });
    // Another client still waits for the press, and its prompt does not use the grant.
    await expectPress(other.home);
    await expectNoPress(keys.home);
    await expectNoPress(keys.home);
    await expectPress(keys.home);
    const records = audit();
    expect(
      records.filter((x) => x.decision === "approver:build-logs" && x.result === "requested"),
    ).toHaveLength(2);
    expect(
      records.some(
        (x) =>
          x.client === "build-logs" &&
          x.service === "qubesair.Approve" &&
          x.operation === "grant" &&
          x.detail === "for build-keys: count 2 for 600 s",
      ),
    ).toBe(true);
    expect(stack.logged(/confirm-approver .*approver=build-logs/)).toHaveLength(2);
  });

  test("the time bound: an expired grant is no grant", async () => {
    expect((await approve("build-logs", "build-keys", "count 5 1\n")).code).toBe(0);
    // The bound is a time: waiting it out is the property under test.
    await Bun.sleep(1_200);
    await expectPress(keys.home);
    expect((await approve("build-logs", "build-keys", "revoke\n")).code).toBe(0);
  });

  test("a digest grant passes only the matching digest, once", async () => {
    const grip = (await loadKeyring(join(stack.stateDir, "gnupg"))).primaries[0]!.subkeys.find((k) =>
      k.capabilities.includes("s"),
    )!.keygrip;
    const socket = decodeURIComponent(
      (
        await run(["gpgconf", "--homedir", keys.home, "--list-dirs", "agent-socket"], {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
        })
      ).stdout.trim(),
    );
    const good = "C3".repeat(32);
    const bad = "D4".repeat(32);
    const session = (hex: string) =>
      assuanSession(socket, `SIGKEY ${grip}\nSETHASH 8 ${hex}\nPKSIGN\nBYE\n`, {
        timeoutMs: 30_000,
      });
    expect(
      (await approve("build-logs", "build-keys", `digest sha256 ${good.toLowerCase()} 600\n`)).code,
    ).toBe(0);
    // Another digest: the press is asked for (and given).
    const before = prompts();
    const wrong = session(bad);
    await stack.answerNextPrompt("approve");
    expect(await wrong).toContain("D (7:sig-val");
    expect(prompts()).toBe(before + 1);
    // The granted digest: signed without a press, once.
    expect(await session(good)).toContain("D (7:sig-val");
    expect(prompts()).toBe(before + 1);
    const again = session(good);
    await stack.answerNextPrompt("approve");
    expect(await again).toContain("D (7:sig-val");
    expect(prompts()).toBe(before + 2);
    const used = audit().filter((x) => x.decision === "approver:build-logs" && x.result === "requested");
    expect(used.at(-1)!.detail).toContain(good.slice(0, 8));
  });

  test("split-gpg v1: a digest grant passes only the data with that digest, once, and the signature is over exactly that data", async () => {
    const v1 = (data: Uint8Array) =>
      v1Call((io) => callWithStreams(stack, "qubes.Gpg", "build-keys", io), {
        args: ["-b", "-a"],
        stdin: data,
      });
    // Several frames' worth, so the pre-read spans many reads.
    const artefact = new TextEncoder().encode("build 42 artefact\n".repeat(2000));
    const other = new TextEncoder().encode("build 43 artefact\n".repeat(2000));
    const sha = new Bun.CryptoHasher("sha512").update(artefact).digest("hex");
    expect((await approve("build-logs", "build-keys", `digest sha512 ${sha} 600\n`)).code).toBe(0);
    const before = prompts();
    const wrong = v1(other);
    await stack.answerNextPrompt("approve");
    expect((await wrong).exit).toBe(0);
    expect(prompts()).toBe(before + 1);
    const right = await v1(artefact);
    expect(right.exit).toBe(0);
    expect(prompts()).toBe(before + 1);
    // The replayed data is what was signed: the signature verifies over the artefact.
    const dir = stack.dir;
    await Bun.write(join(dir, "artefact"), artefact);
    await Bun.write(join(dir, "artefact.asc"), right.outputs[0]!);
    const verified = await gpgRun(keys.home, [
      "--status-fd",
      "1",
      "--verify",
      join(dir, "artefact.asc"),
      join(dir, "artefact"),
    ]);
    expect(verified.stdout).toContain("[GNUPG:] VALIDSIG");
    const again = v1(artefact);
    await stack.answerNextPrompt("approve");
    expect((await again).exit).toBe(0);
    expect(prompts()).toBe(before + 2);
  });

  test("red team G1: a v1 request for a SHA-1 signature is never matched by a digest grant; SHA-1 digests are never granted", async () => {
    // gpg signs the data's SHA-1 when asked (--digest-algo SHA1): the signature would then hold
    // for any data colliding with the artefact under SHA-1, which the approver never saw.
    const v1 = (args: string[], data: Uint8Array) =>
      v1Call((io) => callWithStreams(stack, "qubes.Gpg", "build-keys", io), { args, stdin: data });
    const artefact = new TextEncoder().encode("build 44 artefact\n".repeat(100));
    const sha = new Bun.CryptoHasher("sha512").update(artefact).digest("hex");
    expect((await approve("build-logs", "build-keys", `digest sha512 ${sha} 600\n`)).code).toBe(0);
    const before = prompts();
    const weak = v1(["--digest-algo", "SHA1", "-b", "-a"], artefact);
    const first = await Promise.race([
      weak.then(() => "signed without a press"),
      stack.answerNextPrompt("approve").then(() => "pressed"),
    ]);
    expect(first).toBe("pressed");
    expect((await weak).exit).toBe(0);
    expect(prompts()).toBe(before + 1);
    // The grant is still there for the same data signed over SHA-2.
    expect((await v1(["-b", "-a"], artefact)).exit).toBe(0);
    expect(prompts()).toBe(before + 1);
    for (const algo of ["sha1", "rmd160"]) {
      const r = await approve("build-logs", "build-keys", `digest ${algo} ${"a".repeat(40)}\n`);
      expect([algo, r.code]).toEqual([algo, 1]);
    }
  });

  test("malformed or oversized requests grant nothing", async () => {
    for (const line of [
      "count 0\n",
      "count 101\n",
      "count 3 3601\n",
      "digest sha256 xyz\n",
      `${"A".repeat(300)}\n`,
    ]) {
      const r = await approve("build-logs", "build-keys", line);
      expect([line, r.code]).toEqual([line, 1]);
      expect(r.err).toStartWith("qubesair.Approve: ");
    }
    await expectPress(keys.home);
  });
});
