/**
 * The device's append-only, hash-chained audit log (core/audit/record.ts): every split-GPG
 * request, its confirmation decision and its result, one JSON line each, fsynced before
 * append() resolves. Appends are serialised, so concurrent connections never interleave lines.
 *
 * Opening checks the chain (core/audit/verify.ts). A torn last line (power loss mid-write) is
 * cut off and an `audit-recovered` record says how many bytes went; a chain broken elsewhere is
 * kept as it is (it is evidence) and an `audit-chain-broken` record notes where, with the chain
 * continuing from the last line, so the host's verifier still reports the original break.
 * A failed append (ENOSPC, EIO, a failed fsync) is cut back to the last whole record, so the
 * chain never holds a torn line, and rejects with AuditWriteError: callers that are about to
 * start an operation refuse it (operation.ts). A result that could not be written is queued with
 * noteUnrecorded() and written, as a result-unrecorded record, before anything else as soon as
 * an append succeeds again.
 * Must never: rewrite or drop a complete record, write a line without fsync, or resolve an
 * append whose record is not on disk.
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

/** What the services need of the log (tests inject one that fails). */
export interface AuditWriter {
  /** Appends one record; resolves once it is on disk, rejects with AuditWriteError if it is not. */
  append(entry: AuditEntry): Promise<AuditRecord>;
  /** Queues a record for a result that could not be written; it goes first on the next append. */
  noteUnrecorded(entry: AuditEntry): void;
}

/** An append did not reach the disk (the log holds no part of it). */
export class AuditWriteError extends Error {
  override readonly name = "AuditWriteError";
  constructor(
    /** The errno name (ENOSPC, EIO, …) or "closed". */
    readonly code: string,
  ) {
    super(`cannot write the audit log (${code})`);
  }
}

export interface AuditOpenOptions {
  /** Wall-clock milliseconds (default Date.now). */
  readonly now?: () => number;
}

export class AuditLog implements AuditWriter {
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** A failed write left bytes after `size` that could not be cut off yet. */
  private torn = false;
  /** result-unrecorded records still to write, oldest first. */
  private readonly unrecorded: AuditEntry[] = [];

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

  /** Appends one record; resolves once it is on disk (after any queued result-unrecorded ones). */
  append(entry: AuditEntry): Promise<AuditRecord> {
    const run = this.tail.then(async () => {
      if (this.closed) throw new AuditWriteError("closed");
      while (this.unrecorded.length > 0) {
        await this.write(this.unrecorded[0]!);
        this.unrecorded.shift();
      }
      return this.write(entry);
    });
    this.tail = run.catch(() => {});
    return run;
  }

  private flushUnrecorded(): Promise<void> {
    const run = this.tail.then(async () => {
      while (this.unrecorded.length > 0) {
        await this.write(this.unrecorded[0]!);
        this.unrecorded.shift();
      }
    });
    this.tail = run.catch(() => {});
    return run;
  }

  noteUnrecorded(entry: AuditEntry): void {
    this.unrecorded.push(entry);
  }

  /** result-unrecorded records not yet written. */
  get unrecordedPending(): number {
    return this.unrecorded.length;
  }

  private async write(entry: AuditEntry): Promise<AuditRecord> {
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
    try {
      if (this.torn) {
        await this.handle.truncate(this.size);
        this.torn = false;
      }
      let off = 0;
      while (off < bytes.length) {
        const { bytesWritten } = await this.handle.write(bytes, off, bytes.length - off);
        off += bytesWritten;
      }
      await this.handle.sync();
    } catch (e) {
      // Cut back to the last whole record (O_APPEND: the next write lands right after it).
      this.torn = true;
      try {
        await this.handle.truncate(this.size);
        await this.handle.sync();
        this.torn = false;
      } catch {}
      throw new AuditWriteError((e as NodeJS.ErrnoException).code ?? "EIO");
    }
    this.seq = seq;
    this.head = hash;
    this.size += bytes.length;
    return { ...fields, seq, prev, hash };
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
    // A last try for results still unrecorded (if it fails, `logs` shows their requests as open).
    if (this.unrecorded.length > 0) await this.flushUnrecorded().catch(() => {});
    await this.tail;
    this.closed = true;
    await this.handle.close();
  }
}

function internal(operation: string, result: string, detail: string): AuditEntry {
  return { client: "", service: "qubes-air-agent", operation, decision: "none", result, detail };
}
