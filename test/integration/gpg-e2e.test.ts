/**
 * split-gpg2 end to end through the whole stack, every part a real process: a work qube's stock
 * `gpg` -> its S.gpg-agent (forwarded per connection with `qubes-air call pi-gpg qubes.Gpg2`)
 * -> sys-remote's daemon -> Noise link (TCP) -> the agent's built-in qubes.Gpg2 -> the device's
 * gpg-agent, with a device key made by `qubes-air-agent gpg-setup` and every signature and
 * decryption pressed on the (simulated) button by the test. Signatures verify with the exported
 * public key alone; a denied press makes gpg fail; `qubes-air logs` verifies the device's audit
 * chain, and finds the exact line after one line was tampered with, and a rebuilt log by its pin.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatRecord, GENESIS_HASH } from "../../core/audit/record.ts";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import {
  cli,
  clientHome,
  DEVICE,
  forwardAgentSocket,
  gpgOk,
  gpgRun,
  type Stack,
  startStack,
} from "./gpg-e2e-stack.ts";

setDefaultTimeout(60_000);

let stack: Stack;
let client: { home: string; fingerprint: string };
let verifier: string;
let forwarder: Awaited<ReturnType<typeof forwardAgentSocket>>;
const MESSAGE = "signed on the device, through sys-remote\nsecond line\n";

beforeAll(async () => {
  stack = await startStack({ gpg: true });
  client = await clientHome(stack);
  verifier = (await clientHome(stack, "ver")).home;
  forwarder = await forwardAgentSocket(stack, client.home, "work");
}, 120_000);

afterAll(async () => {
  await forwarder?.close();
  await stack?.close();
});

/** Runs gpg in the client while the test presses the button for each prompt. */
async function withPresses(verdicts: ("approve" | "deny")[], args: string[], input = "") {
  const running = gpgRun(client.home, args, input);
  const prompts: string[] = [];
  for (const v of verdicts) prompts.push(await stack.answerNextPrompt(v));
  return { ...(await running), prompts };
}

const auditPath = () => join(stack.stateDir, "audit.log");
const logs = (...args: string[]) => cli(stack.host, ["logs", "--source", "sys-remote", ...args, DEVICE]);

describe("split-gpg2: stock gpg in a client qube, the key on the device", () => {
  test("detach-sign: one press; the prompt names the client, the key and the digest; verifies with the public key alone", async () => {
    const dir = stack.dir;
    writeFileSync(join(dir, "m.txt"), MESSAGE);
    const r = await withPresses(
      ["approve"],
      ["--yes", "--armor", "--detach-sign", "-o", join(dir, "m.asc"), join(dir, "m.txt")],
    );
    expect(r.code).toBe(0);
    expect(r.prompts[0]).toMatch(/client=work service=qubes.Gpg2 operation=PKSIGN/);
    expect(r.prompts[0]).toContain(client.fingerprint);
    expect(r.prompts[0]).toMatch(/sha\d+ [0-9A-F]{8}…[0-9A-F]{8}/);
    const v = await gpgRun(verifier, [
      "--status-fd",
      "1",
      "--verify",
      join(dir, "m.asc"),
      join(dir, "m.txt"),
    ]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain("[GNUPG:] VALIDSIG");
  });

  test("clear-sign and sign (inline): each verifies with the public key alone", async () => {
    const cs = await withPresses(["approve"], ["--clear-sign"], MESSAGE);
    expect(cs.stdout).toContain("-----BEGIN PGP SIGNED MESSAGE-----");
    expect((await gpgRun(verifier, ["--status-fd", "1", "--verify"], cs.stdout)).stdout).toContain(
      "[GNUPG:] GOODSIG",
    );
    const signed = await withPresses(["approve"], ["--armor", "--sign"], MESSAGE);
    const v = await gpgRun(verifier, ["--status-fd", "2", "--decrypt"], signed.stdout);
    expect([v.code, v.stdout]).toEqual([0, MESSAGE]);
    expect(v.stderr).toContain("[GNUPG:] GOODSIG");
  });

  test("decrypt: a message encrypted to the device's key with the public key alone", async () => {
    const ct = await gpgOk(
      verifier,
      ["--armor", "--trust-model", "always", "-r", client.fingerprint, "--encrypt"],
      MESSAGE,
    );
    const r = await withPresses(["approve"], ["--decrypt"], ct.stdout);
    expect([r.code, r.stdout]).toEqual([0, MESSAGE]);
    expect(r.prompts[0]).toContain("operation=PKDECRYPT");
  });

  test("sign+encrypt, then decrypt it: both through the device, the signature good", async () => {
    const se = await withPresses(
      ["approve"],
      ["--armor", "-r", client.fingerprint, "--sign", "--encrypt"],
      MESSAGE,
    );
    expect(se.code).toBe(0);
    const dec = await withPresses(["approve"], ["--status-fd", "2", "--decrypt"], se.stdout);
    expect([dec.code, dec.stdout]).toEqual([0, MESSAGE]);
    expect(dec.stderr).toContain("[GNUPG:] GOODSIG");
  });

  test("a denied press: gpg fails, nothing is signed, and the audit log records the denial", async () => {
    const r = await withPresses(["deny"], ["--clear-sign"], MESSAGE);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain("BEGIN PGP SIGNATURE");
    expect(r.stderr).toMatch(/cancel/i);
    const text = readFileSync(auditPath(), "utf8");
    const v = verifyAuditLog(text);
    expect(v.ok).toBe(true);
    const last = v.records.filter((x) => x.operation === "PKSIGN").at(-1)!;
    expect([last.client, last.service, last.decision, last.result]).toEqual([
      "work",
      "qubes.Gpg2",
      "denied",
      "refused",
    ]);
    expect(last.key).toContain(client.fingerprint);
    // every use so far: 6 approved signatures/decryptions, each a request record and a result ok
    expect(v.records.filter((x) => x.decision === "approved" && x.result === "ok").length).toBe(6);
    expect(v.records.filter((x) => x.decision === "approved" && x.result === "requested").length).toBe(6);
  });
});

describe("qubes-air logs: fetch and verify the device's audit chain", () => {
  test("the chain verifies; the table shows each request; the head is remembered as the next pin", async () => {
    const r = await logs();
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^SEQ\s+TIME\s+CLIENT\s+SERVICE\s+OPERATION\s+DECISION\s+RESULT\s+KEY \/ DETAIL$/,
    );
    // Each approved operation: its request record (written before PKSIGN went to gpg-agent),
    // then its result, naming the request.
    expect(r.stdout).toMatch(
      /\n1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+work\s+qubes\.Gpg2\s+PKSIGN\s+approved\s+requested\s+.*Device E2E/,
    );
    expect(r.stdout).toMatch(
      /\n2\s+\S+ \S+\s+work\s+qubes\.Gpg2\s+PKSIGN\s+approved\s+ok\s+.*Device E2E.*request #1; /,
    );
    expect(r.stdout).toMatch(/work\s+qubes\.Gpg2\s+PKSIGN\s+denied\s+refused/);
    const n = verifyAuditLog(readFileSync(auditPath(), "utf8")).records.length;
    expect(lines.at(-1)).toMatch(new RegExp(`^audit log OK: ${n} records, head ${n}:[0-9a-f]{64}$`));
    const pins = JSON.parse(readFileSync(join(stack.host.state, "audit-pins.json"), "utf8"));
    expect(pins.pins[DEVICE].seq).toBe(n);
    const json = JSON.parse((await logs("--json")).stdout);
    expect(json).toMatchObject({ remote: DEVICE, ok: true, break: null, head: { seq: n } });
    expect(json.records).toHaveLength(n);
  });

  test("the device's policy decides who may read it: another source is refused with the rule to add", async () => {
    const r = await cli(stack.host, ["logs", "--source", "work", DEVICE]);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain("qubesair.AuditLog  *  work  @anyvm  allow");
    expect((await cli(stack.host, ["logs", "--pin", "x", DEVICE])).code).toBe(2);
  });

  test("one tampered line: logs names that exact line (bad-hash) and exits 1; the pin catches a rebuilt log", async () => {
    const original = readFileSync(auditPath(), "utf8");
    const lines = original.split("\n");
    const target = lines.findIndex((l, i) => i > 0 && l.includes('"client":"work"'));
    lines[target] = lines[target]!.replace('"client":"work"', '"client":"evil"');
    writeFileSync(auditPath(), lines.join("\n"));
    const tampered = await logs();
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain(`BROKEN at line ${target + 1}: bad-hash`);
    expect(tampered.stdout.trimEnd().split("\n")).toHaveLength(target + 1); // header + the records before it
    const json = JSON.parse((await logs("--json")).stdout);
    expect(json.break).toMatchObject({ line: target + 1, reason: "bad-hash" });

    // A whole new chain of the same size verifies on its own, but not against the pinned head.
    let prev = GENESIS_HASH;
    const rebuilt = lines
      .filter((l) => l !== "")
      .map((l, i) => {
        const { seq: _s, prev: _p, hash: _h, ...fields } = JSON.parse(l);
        const f = formatRecord(i + 1, fields, prev);
        prev = f.hash;
        return f.line;
      })
      .join("");
    expect(verifyAuditLog(rebuilt).ok).toBe(true);
    writeFileSync(auditPath(), rebuilt);
    const n = original.split("\n").length - 1;
    const caught = await logs();
    expect(caught.code).toBe(1);
    expect(caught.stderr).toContain(`BROKEN at line ${n}: pin-mismatch`);
    writeFileSync(auditPath(), original);
    expect((await logs()).code).toBe(0);
  });
});
