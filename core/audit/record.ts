/**
 * The device's audit log records: one JSON object per line, hash-chained.
 *
 *   {"seq":N,"time":…,"client":…,"service":…,"operation":…,"key":…,"decision":…,"result":…,
 *    "detail":…,"prev":"<64 hex>","hash":"<64 hex>"}
 *
 * The canonical record is that JSON without "hash" (keys in exactly this order, JSON.stringify
 * spacing); hash = sha256(prev hash bytes || canonical record UTF-8), lower-case hex. The first
 * record's prev is 64 zeros. Pure: the appender is agent/services/audit/log.ts, the verifier verify.ts.
 *
 * An approved operation has two records: the request (result "requested"), written and fsynced
 * before the operation starts, and its result, whose detail starts "request #SEQ". A result that
 * could not be written when the operation ended is written later as a "result-unrecorded" record
 * with the same reference (outcomes.ts pairs them up for `qubes-air logs`).
 * Must never: change the field order or encoding (every old log would stop verifying).
 */
import { sha256 } from "@noble/hashes/sha2.js";

export const GENESIS_HASH = "0".repeat(64);

/** The result field of a request record: written before the operation starts. */
export const RESULT_REQUESTED = "requested";
/** The operation field of a record standing in for a result that could not be written in time. */
export const OP_RESULT_UNRECORDED = "result-unrecorded";

/** The start of a result record's detail: which request record it answers. */
export function requestRef(seq: number, extra = ""): string {
  return extra === "" ? `request #${seq}` : `request #${seq}; ${extra}`;
}

/** The request sequence number a result record's detail names, or null. */
export function parseRequestRef(detail: string): number | null {
  const m = /^request #([1-9][0-9]{0,15})(?:;|$)/.exec(detail);
  return m ? Number(m[1]) : null;
}

export interface AuditFields {
  /** ISO 8601 UTC time of the decision. */
  readonly time: string;
  /** The calling qube, as the relay reported it (QREXEC_REMOTE_DOMAIN), never from a payload. */
  readonly client: string;
  readonly service: string;
  /** e.g. PKSIGN, PKDECRYPT, sign, decrypt, filtered, refused. */
  readonly operation: string;
  /** The device's description of the key (UID and fingerprint), or "". */
  readonly key: string;
  /** approved, denied, refused, window, none (no confirmation needed), approver:NAME (a grant, qubesair.Approve). */
  readonly decision: string;
  /** ok, error, exit N, or a fixed refusal code. */
  readonly result: string;
  /** Our own extra words (digest prefix/suffix, byte counts); never peer text. */
  readonly detail: string;
}

export interface AuditRecord extends AuditFields {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
}

export const FIELD_ORDER = [
  "seq",
  "time",
  "client",
  "service",
  "operation",
  "key",
  "decision",
  "result",
  "detail",
  "prev",
  "hash",
] as const;

export function canonicalRecord(seq: number, f: AuditFields, prev: string): string {
  return JSON.stringify({
    seq,
    time: f.time,
    client: f.client,
    service: f.service,
    operation: f.operation,
    key: f.key,
    decision: f.decision,
    result: f.result,
    detail: f.detail,
    prev,
  });
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export function recordHash(prev: string, canonical: string): string {
  const body = new TextEncoder().encode(canonical);
  const input = new Uint8Array(32 + body.length);
  input.set(hexToBytes(prev), 0);
  input.set(body, 32);
  return bytesToHex(sha256(input));
}

/** The full line (with LF) for record `seq` after `prev`, and its hash. */
export function formatRecord(seq: number, f: AuditFields, prev: string): { line: string; hash: string } {
  const canonical = canonicalRecord(seq, f, prev);
  const hash = recordHash(prev, canonical);
  return { line: `${canonical.slice(0, -1)},"hash":"${hash}"}\n`, hash };
}
