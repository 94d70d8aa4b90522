/**
 * Consent (attack class g) with real gpg-agent and stock gpg: a timeout denies and nothing is
 * signed; a flood of concurrent signing requests puts exactly one prompt on the device and the
 * rest are refused at once; a denial is followed by a cooldown for that client; v1 asks too.
 * Every decision is in the audit log.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { loadKeyring } from "../../agent/services/gpg/gpg-tools.ts";
import { serveGpg1 } from "../../agent/services/gpg/gpg1-service.ts";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import { ERR_CANCELED_LINE } from "../../core/gpg/assuan.ts";
import {
  cleanup,
  confirming,
  type Device,
  gpg,
  killAgents,
  makeDevice,
  quietLog,
} from "../fixtures/gpg/env.ts";
import { assuanSession, gpg2Stack } from "../fixtures/gpg/stack.ts";
import { v1Call } from "../fixtures/gpg/v1-client.ts";

let device: Device;
let S: string;
const H = "B".repeat(64);

beforeAll(async () => {
  device = await makeDevice();
  const k = (await loadKeyring(device.served)).primaries[0]!;
  S = k.subkeys.find((x) => x.capabilities.includes("s"))!.keygrip;
}, 60_000);

afterAll(async () => {
  if (!device) return;
  await killAgents(device.served, device.primary);
  cleanup(device.dir);
});

describe("consent", () => {
  test("a timeout denies: stock gpg fails and no PKSIGN reaches the agent", async () => {
    const c = await confirming("never", { timeoutMs: 200 });
    const stack = await gpg2Stack(device, c);
    try {
      const r = await gpg(stack.client, ["--detach-sign"], "data");
      expect(r.status).not.toBe(0);
      expect(r.err).toContain("cancel");
      expect(stack.spy.sent()).not.toContain("PKSIGN");
      await stack.served.settled();
      const log = verifyAuditLog(readFileSync(c.auditPath, "utf-8"));
      expect(log.ok && log.records.some((x) => x.operation === "PKSIGN" && x.decision === "timeout")).toBe(
        true,
      );
    } finally {
      await stack.close();
      await c.close();
    }
  });

  test("a flood of requests puts one prompt on the device; the rest are refused at once", async () => {
    const c = await confirming("manual");
    const stack = await gpg2Stack(device, c);
    try {
      const script = `SIGKEY ${S}\nSETHASH 8 ${H}\nPKSIGN\n`;
      const first = assuanSession(stack.socket, `${script}BYE\n`);
      while (!c.confirm.busy) await new Promise((r) => setTimeout(r, 5));
      const flood = await Promise.all(Array.from({ length: 8 }, () => assuanSession(stack.socket, script)));
      for (const f of flood) expect(f).toEndWith(`${ERR_CANCELED_LINE}\n`);
      expect(c.input.waits).toBe(1);
      expect(c.input.press("approve")).toBe(true);
      expect(await first).toContain("D (7:sig-val");
      expect(stack.spy.sent().match(/PKSIGN/g)).toHaveLength(1);
    } finally {
      await stack.close();
      await c.close();
    }
  });

  test("after a denial, that client is refused without a prompt during the cooldown", async () => {
    const c = await confirming("deny", { cooldownMs: 60_000 });
    const stack = await gpg2Stack(device, c);
    try {
      const script = `SIGKEY ${S}\nSETHASH 8 ${H}\nPKSIGN\n`;
      expect(await assuanSession(stack.socket, script)).toEndWith(`${ERR_CANCELED_LINE}\n`);
      expect(await assuanSession(stack.socket, script)).toEndWith(`${ERR_CANCELED_LINE}\n`);
      expect(c.input.waits).toBe(1);
      await stack.served.settled();
      const log = verifyAuditLog(readFileSync(c.auditPath, "utf-8"));
      expect(log.ok && log.records.map((x) => x.decision)).toEqual(["denied", "cooldown"]);
    } finally {
      await stack.close();
      await c.close();
    }
  });

  test("v1: a denied signing request never starts gpg's signing and says so on stderr", async () => {
    const c = await confirming("deny");
    const serve = (io: Parameters<typeof serveGpg1>[0]) =>
      serveGpg1(io, {
        source: "work",
        gnupgHome: device.served,
        confirm: c.confirm,
        audit: c.audit,
        log: quietLog,
      });
    const r = await v1Call(serve, { args: ["-s"], stdin: new TextEncoder().encode("x") });
    expect(r.exit).toBe(1);
    expect(r.outputs[0]).toBe("");
    expect(r.outputs[1]).toContain("not confirmed");
    expect(c.input.waits).toBe(1);
    await c.close();
  });
});
