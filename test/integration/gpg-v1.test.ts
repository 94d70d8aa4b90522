/**
 * split-gpg v1 (qubes.Gpg) end to end: a TypeScript client emulator speaking the exact wire
 * format to serveGpg1, which runs the device's real gpg. Signs, clear-signs, detach-signs,
 * decrypts, sign+encrypts and verifies through a signature fd; status/logger fds arrive as
 * their own streams; listing needs no confirmation; the gpg command line is the canonical one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { serveGpg1 } from "../../agent/services/gpg/gpg1-service.ts";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import {
  type Confirming,
  cleanup,
  confirming,
  type Device,
  gpg,
  gpgOk,
  killAgents,
  makeDevice,
  quietLog,
  recordingGpg,
  tempDir,
} from "../fixtures/gpg/env.ts";
import { type Serve1, v1Call } from "../fixtures/gpg/v1-client.ts";

let device: Device;
let verifier: string;
let c: Confirming;
let serve: Serve1;
let invocations: string;

const MESSAGE = "split-gpg v1 through the device\n";
const enc = (s: string) => new TextEncoder().encode(s);

beforeAll(async () => {
  device = await makeDevice();
  verifier = tempDir("ver");
  await gpgOk(verifier, ["--import"], device.publicKey);
  c = await confirming("approve");
  const rec = recordingGpg(device.dir);
  invocations = rec.log;
  serve = (io) =>
    serveGpg1(io, {
      source: "work",
      gnupgHome: device.served,
      confirm: c.confirm,
      audit: c.audit,
      gpg: rec.path,
      log: quietLog,
    });
}, 60_000);

afterAll(async () => {
  await c?.close();
  if (!device) return;
  await killAgents(device.served, device.primary, verifier);
  cleanup(device.dir, verifier);
});

describe("split-gpg v1 with the client emulator", () => {
  test("detach-sign; verifies with the public key alone", async () => {
    const before = c.input.waits;
    const r = await v1Call(serve, { args: ["-b", "-a"], stdin: enc(MESSAGE) });
    expect(r.exit).toBe(0);
    expect(r.outputs[0]).toContain("BEGIN PGP SIGNATURE");
    expect(c.input.waits).toBe(before + 1);
    const dir = tempDir("msg");
    writeFileSync(join(dir, "m"), MESSAGE);
    writeFileSync(join(dir, "m.asc"), r.outputs[0]!);
    const v = await gpg(verifier, ["--status-fd", "1", "--verify", join(dir, "m.asc"), join(dir, "m")]);
    expect(v.out).toContain("[GNUPG:] VALIDSIG");
    cleanup(dir);
  });

  test("the gpg command line is rebuilt: safe prefix, pinned homedir, -- before positionals", async () => {
    await v1Call(serve, {
      args: ["--clearsign", "--local-user", device.fingerprint, "-"],
      stdin: enc(MESSAGE),
    });
    const lines = readFileSync(invocations, "utf-8").trim().split("\n");
    const run = lines.filter((l) => l.includes("--clearsign")).at(-1)!;
    expect(run).toBe(
      `--no-tty --disable-dirmngr --photo-viewer=/bin/true --batch --exit-on-status-write-error ` +
        `--homedir=${device.served} --clearsign --local-user=${device.fingerprint} -- -`,
    );
  });

  test("clear-sign and inline sign verify", async () => {
    const cs = await v1Call(serve, { args: ["--clearsign"], stdin: enc(MESSAGE) });
    expect(cs.exit).toBe(0);
    expect((await gpg(verifier, ["--status-fd", "1", "--verify"], cs.outputs[0])).out).toContain("GOODSIG");
    const s = await v1Call(serve, { args: ["-s", "-a"], stdin: enc(MESSAGE) });
    const v = await gpg(verifier, ["--status-fd", "2", "-d"], s.outputs[0]);
    expect(v.out).toBe(MESSAGE);
    expect(v.err).toContain("GOODSIG");
  });

  test("decrypt", async () => {
    const ct = await gpgOk(verifier, ["--trust-model", "always", "-r", device.fingerprint, "-e"], MESSAGE);
    const before = c.input.waits;
    const r = await v1Call(serve, { args: ["-d"], stdin: ct.stdout });
    expect(r.exit).toBe(0);
    expect(r.outputs[0]).toBe(MESSAGE);
    expect(c.input.waits).toBe(before + 1);
  });

  test("sign+encrypt, then decrypt through the device and check the signature", async () => {
    const se = await v1Call(serve, { args: ["-s", "-e", "-r", device.fingerprint], stdin: enc(MESSAGE) });
    expect(se.exit).toBe(0);
    const d = await v1Call(serve, {
      args: ["--status-fd", "1", "-o", "-", "--decrypt"],
      stdin: se.raw[0],
    });
    expect(d.exit).toBe(0);
    expect(d.outputs[0]).toContain(MESSAGE);
    expect(d.outputs[0]).toContain("[GNUPG:] GOODSIG");
  });

  test("verify through a signature fd, status and logger fds as their own streams", async () => {
    const sig = await v1Call(serve, { args: ["-b"], stdin: enc(MESSAGE) });
    const before = c.input.waits;
    const r = await v1Call(serve, {
      args: ["--status-fd", "7", "--logger-fd", "9", "--verify", "/dev/fd/5", "-"],
      stdin: enc(MESSAGE),
      signature: sig.raw[0],
      outputs: 4,
    });
    expect(c.input.waits).toBe(before); // verifying uses no secret key
    expect(r.exit).toBe(0);
    expect(r.outputs[2]).toContain("[GNUPG:] GOODSIG");
    expect(r.outputs[3]).toContain("Good signature");
  });

  test("listing keys needs no confirmation", async () => {
    const before = c.input.waits;
    const r = await v1Call(serve, { args: ["--with-colons", "-k"] });
    expect(r.exit).toBe(0);
    expect(r.outputs[0]).toContain(device.fingerprint);
    expect(c.input.waits).toBe(before);
  });

  test("the audit log has every call and verifies", () => {
    const r = verifyAuditLog(readFileSync(c.auditPath, "utf-8"));
    expect(r.ok).toBe(true);
    const ops = r.records.map((x) => x.operation);
    expect(ops).toContain("sign");
    expect(ops).toContain("decrypt");
    expect(ops).toContain("sign+encrypt");
    expect(ops).toContain("public");
  });
});
