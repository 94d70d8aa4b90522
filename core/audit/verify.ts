/**
 * Verifies a device audit log (record.ts) and says exactly where its chain breaks: the 1-based
 * line number and why. The host runs it on what `qubes-air logs QUBE` fetched; the agent runs it
 * when it opens its own log. A pin from an earlier fetch (seq and hash of the head then) also
 * catches a log that was cut short or rewritten from the start.
 * Must never: accept a line that is not byte-for-byte the canonical form of its record.
 */
import { type AuditRecord, canonicalRecord, FIELD_ORDER, GENESIS_HASH, recordHash } from "./record.ts";

export type BreakReason =
  | "malformed" // not a JSON record of the expected shape, or not in canonical form
  | "bad-seq" // sequence number is not the previous one plus one
  | "bad-prev" // prev is not the hash of the line before
  | "bad-hash" // hash does not match the record
  | "truncated" // the last line has no LF: a write was cut short
  | "pin-mismatch" // the pinned sequence number has another hash
  | "pin-missing"; // the log ends before the pinned sequence number

export type VerifyResult =
  | { readonly ok: true; readonly records: readonly AuditRecord[]; readonly head: string }
  | {
      readonly ok: false;
      /** 1-based line number where the chain breaks (for pin-missing: one past the last line). */
      readonly line: number;
      readonly reason: BreakReason;
      /** The records before the break, all verified. */
      readonly records: readonly AuditRecord[];
    };

export interface Pin {
  readonly seq: number;
  readonly hash: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Every field between seq and the two hashes is a string. */
const STRING_FIELDS = FIELD_ORDER.slice(1, -2) as readonly Exclude<
  (typeof FIELD_ORDER)[number],
  "seq" | "prev" | "hash"
>[];

function shapeOk(v: unknown): v is AuditRecord {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  if (keys.length !== FIELD_ORDER.length || keys.some((k, i) => k !== FIELD_ORDER[i])) return false;
  const r = v as Record<string, unknown>;
  if (typeof r.seq !== "number" || !Number.isSafeInteger(r.seq) || r.seq < 1) return false;
  if (STRING_FIELDS.some((k) => typeof r[k] !== "string")) return false;
  return typeof r.prev === "string" && HEX64.test(r.prev) && typeof r.hash === "string" && HEX64.test(r.hash);
}

export function verifyAuditLog(text: string, pin?: Pin): VerifyResult {
  const records: AuditRecord[] = [];
  const lines = text.split("\n");
  const last = lines.pop()!; // "" when the text ends with LF (or is empty)
  let prev = GENESIS_HASH;
  for (let i = 0; i < lines.length; i++) {
    const fail = (reason: BreakReason): VerifyResult => ({ ok: false, line: i + 1, reason, records });
    let v: unknown;
    try {
      v = JSON.parse(lines[i]!);
    } catch {
      return fail("malformed");
    }
    if (!shapeOk(v)) return fail("malformed");
    const canonical = canonicalRecord(v.seq, v, v.prev);
    if (lines[i] !== `${canonical.slice(0, -1)},"hash":"${v.hash}"}`) return fail("malformed");
    if (v.seq !== records.length + 1) return fail("bad-seq");
    if (v.prev !== prev) return fail("bad-prev");
    if (v.hash !== recordHash(v.prev, canonical)) return fail("bad-hash");
    if (pin && v.seq === pin.seq && v.hash !== pin.hash) return fail("pin-mismatch");
    records.push(v);
    prev = v.hash;
  }
  if (last !== "") return { ok: false, line: lines.length + 1, reason: "truncated", records };
  if (pin && pin.seq > records.length) {
    return { ok: false, line: lines.length + 1, reason: "pin-missing", records };
  }
  return { ok: true, records, head: prev };
}

/** One line of text for a person: "audit log OK: N records, head H" or where it breaks. */
export function describeVerifyResult(r: VerifyResult): string {
  if (r.ok) return `audit log OK: ${r.records.length} records, head ${r.head}`;
  return `audit log broken at line ${r.line}: ${r.reason} (${r.records.length} records before it verified)`;
}
