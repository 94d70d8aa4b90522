import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditOutcomes } from "../../../core/audit/outcomes.ts";
import type { AuditRecord } from "../../../core/audit/record.ts";
import { verifyAuditLog } from "../../../core/audit/verify.ts";
import { type AuditEntry, AuditLog, AuditWriteError, type AuditWriter } from "./log.ts";
import { recordRequest, recordResult } from "./operation.ts";

const dirs: string[] = [];
function path(): string {
  const d = mkdtempSync(join(tmpdir(), "qa-audit-op-"));
  dirs.push(d);
  return join(d, "audit.log");
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const REQ = { client: "work", service: "qubes.Gpg2", operation: "PKSIGN", decision: "approved" };

/** An injected writer that fails while `full` is set, as a full disk does. */
class FlakyWriter implements AuditWriter {
  full = false;
  readonly written: AuditEntry[] = [];
  readonly noted: AuditEntry[] = [];
  append(entry: AuditEntry): Promise<AuditRecord> {
    if (this.full) return Promise.reject(new AuditWriteError("ENOSPC"));
    this.written.push(entry);
    return Promise.resolve({ seq: this.written.length } as AuditRecord);
  }
  noteUnrecorded(entry: AuditEntry): void {
    this.noted.push(entry);
  }
}

/** Makes the log's file handle fail its writes with ENOSPC after `bytes` more bytes. */
function diskFullAfter(log: AuditLog, bytes: number): { full: number } {
  const h = (log as unknown as { handle: FileHandle }).handle;
  const write = h.write.bind(h) as (b: Uint8Array, o: number, l: number) => Promise<{ bytesWritten: number }>;
  const state = { full: bytes };
  (h as unknown as { write: typeof write }).write = async (b, o, l) => {
    if (state.full <= 0) throw Object.assign(new Error("no space"), { code: "ENOSPC" });
    const n = Math.min(l, state.full);
    state.full -= n;
    return write(b, o, n);
  };
  return state;
}

describe("audit ordering (operation.ts)", () => {
  test("a request that cannot be written returns null: the caller must not start", async () => {
    const w = new FlakyWriter();
    w.full = true;
    let started = false;
    const req = await recordRequest(w, REQ);
    if (req) started = true;
    expect([req, started]).toEqual([null, false]);
  });

  test("the request record is on the writer before the operation starts; the result names it", async () => {
    const w = new FlakyWriter();
    const events: string[] = [];
    const req = await recordRequest(w, REQ);
    events.push(`written=${w.written.length}`, "start");
    await recordResult(w, req!, "ok", "sha256 01…ff");
    expect(events).toEqual(["written=1", "start"]);
    expect(w.written.map((e) => [e.result, e.detail ?? ""])).toEqual([
      ["requested", ""],
      ["ok", "request #1; sha256 01…ff"],
    ]);
  });

  test("a result that cannot be written is queued as result-unrecorded, never thrown", async () => {
    const w = new FlakyWriter();
    const req = await recordRequest(w, REQ);
    w.full = true;
    await recordResult(w, req!, "exit 0");
    expect(w.noted).toEqual([
      { ...REQ, operation: "result-unrecorded", result: "exit 0", detail: "request #1" },
    ]);
  });
});

describe("AuditLog on a full disk", () => {
  test("a torn write is cut back: the chain stays whole and the append rejects with AuditWriteError", async () => {
    const p = path();
    const log = await AuditLog.open(p);
    await log.append({ ...REQ, result: "requested" });
    const disk = diskFullAfter(log, 40); // the next record gets 40 bytes in, then ENOSPC
    await expect(log.append({ ...REQ, result: "requested" })).rejects.toBeInstanceOf(AuditWriteError);
    expect(verifyAuditLog(readFileSync(p, "utf8")).ok).toBe(true);
    disk.full = 1 << 20;
    const rec = await log.append({ ...REQ, result: "requested" });
    expect(rec.seq).toBe(2);
    await log.close();
    const v = verifyAuditLog(readFileSync(p, "utf8"));
    expect([v.ok, v.records.length]).toEqual([true, 2]);
  });

  test("a queued result-unrecorded record goes first once the disk takes writes again; outcomes show it", async () => {
    const p = path();
    const log = await AuditLog.open(p);
    const req = await recordRequest(log, REQ);
    const disk = diskFullAfter(log, 0);
    await recordResult(log, req!, "ok");
    expect(log.unrecordedPending).toBe(1);
    // While the disk is full nothing else gets in either: a new request is refused.
    expect(await recordRequest(log, REQ)).toBeNull();
    disk.full = 1 << 20;
    const next = await recordRequest(log, REQ);
    expect(next?.seq).toBe(3);
    await log.close();
    const v = verifyAuditLog(readFileSync(p, "utf8"));
    expect(v.ok).toBe(true);
    expect(v.records.map((r) => [r.seq, r.operation, r.result, r.detail])).toEqual([
      [1, "PKSIGN", "requested", ""],
      [2, "result-unrecorded", "ok", "request #1"],
      [3, "PKSIGN", "requested", ""],
    ]);
    expect(auditOutcomes(v.records)).toEqual({ requests: 2, late: [1], open: [3] });
  });
});

describe("AuditLog close", () => {
  test("a result still unrecorded gets a last try when the log closes", async () => {
    const p = path();
    const log = await AuditLog.open(p);
    const req = await recordRequest(log, REQ);
    const disk = diskFullAfter(log, 0);
    await recordResult(log, req!, "ok");
    disk.full = 1 << 20;
    await log.close();
    const v = verifyAuditLog(readFileSync(p, "utf8"));
    expect(v.records.map((r) => r.operation)).toEqual(["PKSIGN", "result-unrecorded"]);
  });
});
