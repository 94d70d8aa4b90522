import { describe, expect, test } from "bun:test";
import { auditOutcomes, describeOutcomes } from "./outcomes.ts";
import type { AuditRecord } from "./record.ts";

const rec = (seq: number, operation: string, result: string, detail = ""): AuditRecord =>
  ({ seq, operation, result, detail }) as AuditRecord;

describe("auditOutcomes", () => {
  test("pairs requests with results, late results and none", () => {
    const o = auditOutcomes([
      rec(1, "PKSIGN", "requested"),
      rec(2, "PKSIGN", "ok", "request #1; sha256 ab…cd"),
      rec(3, "sign", "requested"),
      rec(4, "call", "requested", "arg=x"),
      rec(5, "result-unrecorded", "exit 0", "request #3"),
      rec(6, "PKSIGN", "refused"),
    ]);
    expect(o).toEqual({ requests: 3, late: [3], open: [4] });
    expect(describeOutcomes(o)).toContain(
      "1 result(s) could not be recorded when the operation ended (request #3)",
    );
    expect(describeOutcomes(o)).toContain("1 request(s) have no result record (request #4)");
  });

  test("a reference to a later, unknown or already answered record counts for nothing", () => {
    const o = auditOutcomes([
      rec(1, "PKSIGN", "ok", "request #2"),
      rec(2, "PKSIGN", "requested"),
      rec(3, "PKSIGN", "ok", "request #2"),
      rec(4, "result-unrecorded", "ok", "request #2"),
      rec(5, "PKSIGN", "ok", "request #99"),
    ]);
    expect(o).toEqual({ requests: 1, late: [], open: [] });
    expect(describeOutcomes(o)).toBe("");
  });
});
