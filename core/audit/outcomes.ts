/**
 * Pairs each request record of a verified audit log (record.ts: result "requested") with what
 * came of it: a result record naming it ("request #SEQ"), a late "result-unrecorded" record (the
 * device could not write the result when the operation ended, e.g. its disk was full), or
 * nothing yet (still running when the log was read, or the device stopped before it could write
 * one). `qubes-air logs` prints the last two kinds. Pure.
 * Must never: count a record that does not answer an earlier request record.
 */
import { type AuditRecord, OP_RESULT_UNRECORDED, parseRequestRef, RESULT_REQUESTED } from "./record.ts";

export interface AuditOutcomes {
  /** How many request records the log holds. */
  readonly requests: number;
  /** Requests whose result was written late, in a result-unrecorded record (their seq). */
  readonly late: readonly number[];
  /** Requests with no result record at all (their seq). */
  readonly open: readonly number[];
}

export function auditOutcomes(records: readonly AuditRecord[]): AuditOutcomes {
  const pending = new Map<number, "open" | "late" | "done">();
  for (const r of records) {
    if (r.result === RESULT_REQUESTED && r.operation !== OP_RESULT_UNRECORDED) {
      pending.set(r.seq, "open");
      continue;
    }
    const ref = parseRequestRef(r.detail);
    if (ref === null || ref >= r.seq || pending.get(ref) !== "open") continue;
    pending.set(ref, r.operation === OP_RESULT_UNRECORDED ? "late" : "done");
  }
  const late: number[] = [];
  const open: number[] = [];
  for (const [seq, state] of pending) {
    if (state === "late") late.push(seq);
    else if (state === "open") open.push(seq);
  }
  return { requests: pending.size, late, open };
}

/** Lines for a person about the requests whose result was late or missing; "" when none. */
export function describeOutcomes(o: AuditOutcomes): string {
  const list = (seqs: readonly number[]) =>
    seqs.length > 8
      ? `${seqs
          .slice(0, 8)
          .map((s) => `#${s}`)
          .join(", ")}, …`
      : seqs.map((s) => `#${s}`).join(", ");
  let text = "";
  if (o.late.length > 0) {
    text +=
      `${o.late.length} result(s) could not be recorded when the operation ended (request ${list(o.late)}); ` +
      "the device wrote them later as result-unrecorded records\n";
  }
  if (o.open.length > 0) {
    text +=
      `${o.open.length} request(s) have no result record (request ${list(o.open)}): still running when the ` +
      "log was read, or the device stopped before it could record the result\n";
  }
  return text;
}
