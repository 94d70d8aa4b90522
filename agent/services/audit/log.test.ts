import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { verifyAuditLog } from "../../../core/audit/verify.ts";
import { memoryPair } from "../../../transport/memory.ts";
import type { ByteSink } from "../../../transport/transport.ts";
import { AuditLogShrankError, serveAuditFetch } from "./fetch.ts";
import { type AuditEntry, AuditLog } from "./log.ts";

const dirs: string[] = [];
function path(): string {
  const d = mkdtempSync(join(tmpdir(), "qa-audit-"));
  dirs.push(d);
  return join(d, "audit.log");
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const E: AuditEntry = {
  client: "work",
  service: "qubes.Gpg2",
  operation: "PKSIGN",
  decision: "approved",
  result: "ok",
};

describe("AuditLog", () => {
  test("appends verify; concurrent appends never interleave", async () => {
    const p = path();
    const log = await AuditLog.open(p, { now: () => 0 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.append({ ...E, detail: `n${i}` })));
    await log.close();
    const r = verifyAuditLog(readFileSync(p, "utf-8"));
    expect(r.ok).toBe(true);
    expect(r.records.map((x) => x.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(r.records[0]!.time).toBe("1970-01-01T00:00:00.000Z");
  });

  test("reopening continues the chain", async () => {
    const p = path();
    let log = await AuditLog.open(p);
    await log.append(E);
    const head = log.headHash;
    await log.close();
    log = await AuditLog.open(p);
    expect(log.headHash).toBe(head);
    const rec = await log.append(E);
    expect(rec).toMatchObject({ seq: 2, prev: head });
    await log.close();
    expect(verifyAuditLog(readFileSync(p, "utf-8")).ok).toBe(true);
  });

  test("a torn last line is cut off and the recovery is recorded", async () => {
    const p = path();
    const log = await AuditLog.open(p);
    await log.append(E);
    await log.close();
    appendFileSync(p, '{"seq":2,"time":"20');
    const again = await AuditLog.open(p);
    await again.append(E);
    await again.close();
    const r = verifyAuditLog(readFileSync(p, "utf-8"));
    expect(r.ok).toBe(true);
    expect(r.records.map((x) => `${x.operation}:${x.result}`)).toEqual([
      "PKSIGN:ok",
      "audit-recovered:torn-last-line",
      "PKSIGN:ok",
    ]);
    expect(r.records[1]!.detail).toBe("dropped 19 bytes at line 2");
  });

  test("a tampered log keeps its break where it was and notes it", async () => {
    const p = path();
    const log = await AuditLog.open(p);
    for (let i = 0; i < 3; i++) await log.append(E);
    await log.close();
    writeFileSync(p, readFileSync(p, "utf-8").replace('"result":"ok"', '"result":"error"'));
    const again = await AuditLog.open(p);
    await again.append(E);
    await again.close();
    const text = readFileSync(p, "utf-8");
    expect(verifyAuditLog(text)).toMatchObject({ ok: false, line: 1, reason: "bad-hash" });
    const last = JSON.parse(text.trim().split("\n").at(-2)!);
    expect(last).toMatchObject({
      seq: 4,
      operation: "audit-chain-broken",
      result: "bad-hash",
      detail: "line 1",
    });
  });

  test("serveAuditFetch streams whole records the host can verify", async () => {
    const p = path();
    const log = await AuditLog.open(p);
    for (let i = 0; i < 200; i++) void log.append({ ...E, detail: "x".repeat(500) });
    const { status, text } = await fetchLog(log);
    expect(status).toBe(0);
    const r = verifyAuditLog(text);
    expect(r.ok).toBe(true);
    expect(r.records).toHaveLength(200);
    await log.close();
  });

  test("serveAuditFetch says so when the log shrank under it, and hides other I/O errors", async () => {
    const p = path();
    writeFileSync(p, "short\n");
    const shrank = await fetchLog({ path: p, snapshotLength: async () => 1000 });
    expect(shrank.status).toBe(1);
    expect(shrank.text).toContain(`qubes-air: ${new AuditLogShrankError().message}\n`);
    const missing = await fetchLog({ path: join(p, "gone"), snapshotLength: async () => 10 });
    expect(missing.status).toBe(1);
    expect(missing.text).toBe("qubes-air: cannot read the audit log\n");
  });
});

/** Runs serveAuditFetch over a memory pair; what the host read (stdout and stderr together). */
async function fetchLog(audit: Pick<AuditLog, "path" | "snapshotLength">) {
  const [host, dev] = memoryPair();
  const chunks: Uint8Array[] = [];
  const reading = (async () => {
    for (let c = await host.read(); c; c = await host.read()) chunks.push(c);
  })();
  const status = await serveAuditFetch(
    { stdin: dev, stdout: dev, stderr: dev as ByteSink },
    { audit: audit as AuditLog },
  );
  dev.close();
  await reading;
  return { status, text: new TextDecoder().decode(Buffer.concat(chunks)) };
}
