/**
 * The audit ordering every approved operation follows (split-gpg2's PKSIGN/PKDECRYPT, a v1 gpg
 * run, a policy `ask` call): the request record is written and fsynced BEFORE the operation
 * starts, and if it cannot be written the operation is refused; the result record, naming the
 * request ("request #SEQ"), is written after. A result that cannot be written is queued as a
 * result-unrecorded record (log.ts writes it before anything else once the disk takes writes
 * again), so the log always says that a result is missing.
 * Must never: let an operation start without its request record on disk, or throw from
 * recordResult (the operation has happened; its caller must still answer the client).
 */
import { OP_RESULT_UNRECORDED, RESULT_REQUESTED, requestRef } from "../../../core/audit/record.ts";
import type { Log } from "../../log.ts";
import { type AuditEntry, AuditWriteError, type AuditWriter } from "./log.ts";

/** A request record on disk, to answer with recordResult(). */
export interface AuditedRequest {
  readonly seq: number;
  readonly entry: AuditEntry;
}

/** What a client is told when its operation is refused for want of an audit record. */
export const AUDIT_REFUSAL_MESSAGE = "the device cannot write its audit log (disk full?); nothing was run";

/**
 * Writes the request record (result "requested"); null if it could not be written, in which
 * case the caller must refuse the operation. Errors other than AuditWriteError are bugs: thrown.
 */
export async function recordRequest(
  audit: AuditWriter,
  entry: Omit<AuditEntry, "result">,
  log?: Log,
): Promise<AuditedRequest | null> {
  const full: AuditEntry = { ...entry, result: RESULT_REQUESTED };
  try {
    const rec = await audit.append(full);
    return { seq: rec.seq, entry: full };
  } catch (e) {
    if (!(e instanceof AuditWriteError)) throw e;
    log?.("audit-request-unwritable", { service: entry.service, operation: entry.operation, code: e.code });
    return null;
  }
}

/** Writes the result record for `req`; if that fails, queues a result-unrecorded record. */
export async function recordResult(
  audit: AuditWriter,
  req: AuditedRequest,
  result: string,
  extra = "",
  log?: Log,
): Promise<void> {
  const detail = requestRef(req.seq, extra);
  try {
    await audit.append({ ...req.entry, result, detail });
  } catch (e) {
    if (!(e instanceof AuditWriteError)) throw e;
    log?.("audit-result-unwritable", { service: req.entry.service, request: req.seq, code: e.code });
    audit.noteUnrecorded({ ...req.entry, operation: OP_RESULT_UNRECORDED, result, detail });
  }
}
