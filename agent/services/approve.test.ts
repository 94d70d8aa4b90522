/**
 * qubesair.Approve's service (approve.ts) without the stack: a grant takes effect only once its
 * audit record is on disk; a refused request, a bad argument or self-approval grants nothing;
 * the names come from the call, never the payload.
 */
import { describe, expect, test } from "bun:test";
import type { AuditRecord } from "../../core/audit/record.ts";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";
import { ApproverGrants } from "../confirmation/approver-grants.ts";
import { serveApprove } from "./approve.ts";
import { type AuditEntry, AuditWriteError, type AuditWriter } from "./audit/log.ts";

class Audit implements AuditWriter {
  failing = false;
  readonly entries: AuditEntry[] = [];
  append(entry: AuditEntry): Promise<AuditRecord> {
    if (this.failing) return Promise.reject(new AuditWriteError("ENOSPC"));
    this.entries.push(entry);
    return Promise.resolve({} as AuditRecord);
  }
  noteUnrecorded(): void {}
}

function source(text: string): ByteSource {
  let sent = false;
  return {
    description: "test",
    closed: Promise.resolve(),
    read: async () => {
      if (sent) return null;
      sent = true;
      return new TextEncoder().encode(text);
    },
    close() {},
  };
}

function sink(): ByteSink & { text(): string } {
  let out = "";
  return {
    description: "test",
    closed: Promise.resolve(),
    write: async (d) => {
      out += new TextDecoder().decode(d);
    },
    closeWrite: async () => {},
    close() {},
    text: () => out,
  };
}

async function call(
  line: string,
  o: { approver?: string; client?: string; audit?: Audit; grants?: ApproverGrants },
) {
  const audit = o.audit ?? new Audit();
  const grants =
    o.grants ??
    new ApproverGrants(
      () => 0,
      async () => true,
    );
  const stdout = sink();
  const stderr = sink();
  const status = await serveApprove(
    { stdin: source(line), stdout, stderr },
    { approver: o.approver ?? "build-logs", client: o.client ?? "build-keys", grants, audit, log: () => {} },
  );
  return { status, out: stdout.text(), err: stderr.text(), audit, grants };
}

describe("qubesair.Approve service", () => {
  test("granted: audited first, then in effect", async () => {
    const r = await call("count 2 60\n", {});
    expect([r.status, r.err]).toEqual([0, ""]);
    expect(r.out).toStartWith("granted: ");
    expect(r.audit.entries).toEqual([
      {
        client: "build-logs",
        service: "qubesair.Approve",
        operation: "grant",
        key: "",
        decision: "policy",
        result: "granted",
        detail: "for build-keys: count 2 for 60 s",
      },
    ]);
    expect(r.grants.remaining("build-keys")).toEqual([{ approver: "build-logs", count: 2, digests: 0 }]);
  });

  test("an audit log that cannot be written grants nothing", async () => {
    const audit = new Audit();
    audit.failing = true;
    const r = await call("count 2\n", { audit });
    expect(r.status).toBe(1);
    expect(r.err).toContain("cannot write its audit log");
    expect(r.grants.remaining("build-keys")).toEqual([]);
  });

  test("bad requests, a bad client argument and self-approval grant nothing", async () => {
    for (const [line, o] of [
      ["count 0\n", {}],
      ["count 2", {}],
      ["count 2\n", { client: "" }],
      ["count 2\n", { client: "@anyvm" }],
      ["count 2\n", { approver: "build-keys" }],
    ] as const) {
      const r = await call(line, o);
      expect([line, o, r.status]).toEqual([line, o, 1]);
      expect(r.err).toStartWith("qubesair.Approve: ");
      expect(r.audit.entries).toEqual([]);
      expect(r.grants.remaining(o.client ?? "build-keys")).toEqual([]);
    }
  });
});
