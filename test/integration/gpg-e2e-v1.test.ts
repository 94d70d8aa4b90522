/**
 * split-gpg v1 (qubes.Gpg) end to end through the whole stack: the v1 client emulator
 * (test/fixtures/gpg/v1-client.ts, the exact wire format of qubes-gpg-client) talks through
 * `qubes-air call pi-gpg qubes.Gpg` (the host CLI, the daemon, the Noise link) to the agent's
 * built-in qubes.Gpg, which runs the device's gpg with the key `gpg-setup` made. Sign, clear-sign,
 * detach-sign, decrypt and sign+encrypt, each pressed once; listing needs no press; a denied
 * press ends the request with exit 1 and is in the audit log.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import { type Serve1, type V1CallOptions, v1Call } from "../fixtures/gpg/v1-client.ts";
import { callWithStreams, clientHome, gpgOk, gpgRun, type Stack, startStack } from "./gpg-e2e-stack.ts";

setDefaultTimeout(60_000);

let stack: Stack;
let verifier: { home: string; fingerprint: string };
const MESSAGE = "split-gpg v1 through sys-remote\n";
const enc = (s: string) => new TextEncoder().encode(s);

const serveAs =
  (source: string): Serve1 =>
  (io) =>
    callWithStreams(stack, "qubes.Gpg", source, io);

beforeAll(async () => {
  stack = await startStack({ gpg: true });
  verifier = await clientHome(stack, "ver");
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

async function pressed(verdict: "approve" | "deny" | null, o: V1CallOptions, source = "work") {
  const running = v1Call(serveAs(source), o);
  const prompt = verdict ? await stack.answerNextPrompt(verdict) : null;
  return { ...(await running), prompt };
}

describe("split-gpg v1 through the host CLI", () => {
  test("detach-sign (-b -a): one press; verifies with the public key alone", async () => {
    const r = await pressed("approve", { args: ["-b", "-a"], stdin: enc(MESSAGE) });
    expect(r.exit).toBe(0);
    expect(r.prompt).toMatch(/client=work service=qubes.Gpg operation=sign/);
    writeFileSync(join(stack.dir, "v1.txt"), MESSAGE);
    writeFileSync(join(stack.dir, "v1.asc"), r.outputs[0]!);
    const v = await gpgRun(verifier.home, [
      "--status-fd",
      "1",
      "--verify",
      join(stack.dir, "v1.asc"),
      join(stack.dir, "v1.txt"),
    ]);
    expect(v.stdout).toContain("[GNUPG:] VALIDSIG");
  });

  test("clear-sign and sign: each verifies", async () => {
    const cs = await pressed("approve", { args: ["--clearsign"], stdin: enc(MESSAGE) });
    expect(cs.outputs[0]).toContain("BEGIN PGP SIGNED MESSAGE");
    expect((await gpgRun(verifier.home, ["--status-fd", "1", "--verify"], cs.outputs[0]!)).stdout).toContain(
      "GOODSIG",
    );
    const s = await pressed("approve", { args: ["-s", "-a"], stdin: enc(MESSAGE) });
    const v = await gpgRun(verifier.home, ["--decrypt"], s.outputs[0]!);
    expect([v.code, v.stdout]).toEqual([0, MESSAGE]);
  });

  test("decrypt, and sign+encrypt", async () => {
    const ct = await gpgOk(
      verifier.home,
      ["--trust-model", "always", "-r", verifier.fingerprint, "-e"],
      MESSAGE,
    );
    const d = await pressed("approve", { args: ["-d"], stdin: ct.bytes });
    expect([d.exit, d.outputs[0]]).toEqual([0, MESSAGE]);
    expect(d.prompt).toContain("operation=decrypt");
    const se = await pressed("approve", {
      args: ["-s", "-e", "-r", verifier.fingerprint],
      stdin: enc(MESSAGE),
    });
    expect(se.exit).toBe(0);
    const back = await pressed("approve", {
      args: ["--status-fd", "1", "-o", "-", "--decrypt"],
      stdin: se.raw[0]!,
    });
    expect(back.exit).toBe(0);
    expect(back.outputs[0]).toContain(`\n${MESSAGE}`); // status lines and the plaintext share fd 1
    expect(back.outputs[0]).toContain("[GNUPG:] GOODSIG");
  });

  test("listing keys needs no press; a denied press ends the request with exit 1, in the audit log", async () => {
    const before = stack.logged(/confirm-request /).length;
    const list = await pressed(null, { args: ["--with-colons", "-k"] });
    expect(list.exit).toBe(0);
    expect(list.outputs[0]).toContain(verifier.fingerprint);
    expect(stack.logged(/confirm-request /).length).toBe(before);
    const denied = await pressed("deny", { args: ["--clearsign"], stdin: enc(MESSAGE) }, "personal");
    expect(denied.exit).toBe(1);
    expect(denied.outputs.join("")).not.toContain("BEGIN PGP");
    const v = verifyAuditLog(readFileSync(join(stack.stateDir, "audit.log"), "utf8"));
    expect(v.ok).toBe(true);
    expect(v.records.at(-1)).toMatchObject({
      client: "personal",
      service: "qubes.Gpg",
      operation: "sign",
      decision: "denied",
    });
    // 6 approved operations: each a request record before gpg ran, and its result.
    const approved = v.records.filter((x) => x.service === "qubes.Gpg" && x.decision === "approved");
    expect(approved.filter((x) => x.result === "requested").length).toBe(6);
    expect(approved.filter((x) => x.result === "exit 0").length).toBe(6);
  });
});
