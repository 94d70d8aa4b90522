/**
 * The device's append-only, hash-chained audit log (core/audit/record.ts): every split-GPG
 * request, its confirmation decision and its result, one JSON line each, fsynced before
 * append() resolves. Appends are serialised, so concurrent connections never interleave lines.
 *
 * Opening checks the chain (core/audit/verify.ts). A torn last line (power loss mid-write) is
 * cut off and an `audit-recovered` record says how many bytes went; a chain broken elsewhere is
 * kept as it is (it is evidence) and an `audit-chain-broken` record notes where, with the chain
 * continuing from the last line, so the host's verifier still reports the original break.
 * Must never: rewrite or drop a complete record, or write a line without fsync.
 */
import * as fsp from "node:fs/promises";
import {
  type AuditFields,
  type AuditRecord,
  formatRecord,
  GENESIS_HASH,
} from "../../../core/audit/record.ts";
import { verifyAuditLog } from "../../../core/audit/verify.ts";

export type AuditEntry = Omit<AuditFields, "time" | "detail" | "key"> & { key?: string; detail?: string };

export interface AuditOpenOptions {
  /** Wall-clock milliseconds (default Date.now). */
  readonly now?: () => number;
}

export class AuditLog {
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: fsp.FileHandle,
    private seq: number,
    private head: string,
    private size: number,
    private readonly now: () => number,
  ) {}

  static async open(path: string, opts: AuditOpenOptions = {}): Promise<AuditLog> {
    const now = opts.now ?? Date.now;
    let text = "";
    try {
      text = await fsp.readFile(path, "utf-8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const notes: AuditEntry[] = [];
    const result = verifyAuditLog(text);
    let seq = result.records.length;
    let head = result.ok ? result.head : (result.records.at(-1)?.hash ?? GENESIS_HASH);
    let keep = Buffer.byteLength(text);
    if (!result.ok && result.reason === "truncated") {
      const cut = text.lastIndexOf("\n") + 1;
      keep = Buffer.byteLength(text.slice(0, cut));
      const dropped = Buffer.byteLength(text) - keep;
      notes.push(
        internal("audit-recovered", "torn-last-line", `dropped ${dropped} bytes at line ${result.line}`),
      );
    } else if (!result.ok) {
      // Continue after the last line as written, so the break stays where it is.
      const lines = text.split("\n");
      const lastLine = lines.at(-2);
      try {
        const r = JSON.parse(lastLine ?? "") as Partial<AuditRecord>;
        if (typeof r.seq === "number" && typeof r.hash === "string" && /^[0-9a-f]{64}$/.test(r.hash)) {
          seq = r.seq;
          head = r.hash;
        }
      } catch {}
      notes.push(internal("audit-chain-broken", result.reason, `line ${result.line}`));
    }
    if (keep !== Buffer.byteLength(text)) await fsp.truncate(path, keep);
    const handle = await fsp.open(path, "a", 0o600);
    const log = new AuditLog(path, handle, seq, head, keep, now);
    for (const n of notes) await log.append(n);
    return log;
  }

  /** Appends one record; resolves once it is on disk. */
  append(entry: AuditEntry): Promise<AuditRecord> {
    const run = this.tail.then(async () => {
      if (this.closed) throw new Error("audit log closed");
      const fields: AuditFields = {
        time: new Date(this.now()).toISOString(),
        client: entry.client,
        service: entry.service,
        operation: entry.operation,
        key: entry.key ?? "",
        decision: entry.decision,
        result: entry.result,
        detail: entry.detail ?? "",
      };
      const seq = this.seq + 1;
      const prev = this.head;
      const { line, hash } = formatRecord(seq, fields, prev);
      const bytes = new TextEncoder().encode(line);
      let off = 0;
      while (off < bytes.length) {
        const { bytesWritten } = await this.handle.write(bytes, off, bytes.length - off);
        off += bytesWritten;
      }
      await this.handle.sync();
      this.seq = seq;
      this.head = hash;
      this.size += bytes.length;
      return { ...fields, seq, prev, hash };
    });
    this.tail = run.catch(() => {});
    return run;
  }

  /** The length in bytes of the log once every append queued so far is on disk. */
  async snapshotLength(): Promise<number> {
    await this.tail;
    return this.size;
  }

  get headHash(): string {
    return this.head;
  }

  get lastSeq(): number {
    return this.seq;
  }

  async close(): Promise<void> {
    await this.tail;
    this.closed = true;
    await this.handle.close();
  }
}

function internal(operation: string, result: string, detail: string): AuditEntry {
  return { client: "", service: "qubes-air-agent", operation, decision: "none", result, detail };
}
