/**
 * split-gpg2 end to end with real GnuPG: the client's stock `gpg` talks to an S.gpg-agent in its
 * own home that this test serves, piping each connection through serveGpg2 to the device's
 * gpg-agent (through a recording proxy). Signs, clear-signs, detach-signs, decrypts and
 * sign+encrypts; signatures verify with the public key alone; each secret-key use was confirmed
 * once and is in the audit log, which verifies.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { agentSockets } from "../../agent/services/gpg/gpg-tools.ts";
import { serveGpg2 } from "../../agent/services/gpg/gpg2-service.ts";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import {
  agentSocketOf,
  type Confirming,
  cleanup,
  confirming,
  type Device,
  gpg,
  gpgOk,
  killAgents,
  makeClient,
  makeDevice,
  quietLog,
  tempDir,
} from "../fixtures/gpg/env.ts";
import { recordingProxy, type Served, type Spy, serveSocket } from "../fixtures/gpg/sockets.ts";

let device: Device;
let client: string;
let verifier: string;
let c: Confirming;
let spy: Spy;
let spyNormal: Spy;
let served: Served;

beforeAll(async () => {
  device = await makeDevice();
  client = await makeClient(device);
  verifier = tempDir("ver");
  await gpgOk(verifier, ["--import"], device.publicKey);
  c = await confirming("approve");
  const real = await agentSockets(device.served);
  spy = await recordingProxy(join(device.dir, "spy-x"), real.extra);
  spyNormal = await recordingProxy(join(device.dir, "spy-n"), real.normal);
  served = await serveSocket(await agentSocketOf(client), (io) =>
    serveGpg2(io, {
      source: "work",
      gnupgHome: device.served,
      confirm: c.confirm,
      audit: c.audit,
      sockets: { extra: spy.path, normal: spyNormal.path },
      log: quietLog,
    }),
  );
}, 60_000);

afterAll(async () => {
  await c?.close();
  await served?.close();
  await spy?.close();
  await spyNormal?.close();
  if (!device) return;
  await killAgents(device.served, device.primary, client, verifier);
  cleanup(device.dir, client, verifier);
});

const MESSAGE = "split-gpg2 on a device\nsecond line\n";

describe("split-gpg2 with stock gpg", () => {
  test("detach-sign; the signature verifies with the public key alone", async () => {
    const before = c.input.waits;
    const dir = tempDir("msg");
    const file = join(dir, "m.txt");
    await Bun.write(file, MESSAGE);
    await gpgOk(client, ["--yes", "--armor", "--detach-sign", "-o", `${file}.asc`, file]);
    const v = await gpg(verifier, ["--status-fd", "1", "--verify", `${file}.asc`, file]);
    expect(v.status).toBe(0);
    expect(v.out).toContain("[GNUPG:] VALIDSIG");
    expect(c.input.waits).toBe(before + 1);
    expect(spy.sent()).toContain("PKSIGN");
    cleanup(dir);
  });

  test("clear-sign", async () => {
    const r = await gpgOk(client, ["--clear-sign"], MESSAGE);
    expect(r.out).toContain("-----BEGIN PGP SIGNED MESSAGE-----");
    const v = await gpg(verifier, ["--status-fd", "1", "--verify"], r.stdout);
    expect(v.out).toContain("[GNUPG:] GOODSIG");
  });

  test("sign (inline, binary)", async () => {
    const r = await gpgOk(client, ["--sign"], MESSAGE);
    const v = await gpg(verifier, ["--status-fd", "2", "--decrypt"], r.stdout);
    expect(v.status).toBe(0);
    expect(v.out).toBe(MESSAGE);
    expect(v.err).toContain("[GNUPG:] GOODSIG");
  });

  test("decrypt", async () => {
    const enc = await gpgOk(
      verifier,
      ["--trust-model", "always", "-r", device.fingerprint, "--encrypt"],
      MESSAGE,
    );
    const before = c.input.waits;
    const dec = await gpgOk(client, ["--decrypt"], enc.stdout);
    expect(dec.out).toBe(MESSAGE);
    expect(c.input.waits).toBe(before + 1);
    expect(spy.sent()).toContain("PKDECRYPT");
  });

  test("sign+encrypt, then decrypt and verify", async () => {
    const before = c.input.waits;
    const se = await gpgOk(client, ["-r", device.fingerprint, "--sign", "--encrypt"], MESSAGE);
    const dec = await gpgOk(client, ["--status-fd", "2", "--decrypt"], se.stdout);
    expect(dec.out).toBe(MESSAGE);
    expect(dec.err).toContain("[GNUPG:] GOODSIG");
    expect(c.input.waits).toBe(before + 2);
  });

  test("every secret-key use is in the audit log, which verifies", async () => {
    await served.settled();
    const text = readFileSync(c.auditPath, "utf-8");
    const r = verifyAuditLog(text);
    expect(r.ok).toBe(true);
    const ops = r.records.map((x) => `${x.operation}:${x.decision}:${x.result}`);
    expect(ops.filter((o) => o === "PKSIGN:approved:ok").length).toBeGreaterThanOrEqual(4);
    expect(ops.filter((o) => o === "PKDECRYPT:approved:ok").length).toBeGreaterThanOrEqual(2);
    for (const rec of r.records) {
      expect(rec.client).toBe("work");
      expect(rec.key).toContain(device.fingerprint);
    }
  });
});
