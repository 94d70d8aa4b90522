/**
 * The built-in service behind `qubes-air logs QUBE`: streams the device's audit log to the
 * host, which verifies it with core/audit/verify.ts. It sends a consistent snapshot: whole
 * records only, up to the length the log had once every queued append was on disk.
 * Must never: read the caller's stdin as a request or send anything but the log's bytes.
 */
import * as fsp from "node:fs/promises";
import type { ByteSink, ByteSource } from "../../../transport/transport.ts";
import type { AuditLog } from "./log.ts";

export interface AuditFetchIo {
  readonly stdin: ByteSource;
  readonly stdout: ByteSink;
  readonly stderr: ByteSink;
}

const CHUNK = 64 * 1024;

/** The log got shorter between measuring it and sending it (someone truncated or replaced it). */
export class AuditLogShrankError extends Error {
  override readonly name = "AuditLogShrankError";
  constructor() {
    super("audit log shrank while it was sent");
  }
}

export async function serveAuditFetch(io: AuditFetchIo, ctx: { audit: AuditLog }): Promise<number> {
  let handle: fsp.FileHandle | null = null;
  try {
    const length = await ctx.audit.snapshotLength();
    handle = await fsp.open(ctx.audit.path, "r");
    let off = 0;
    while (off < length) {
      const buf = new Uint8Array(Math.min(CHUNK, length - off));
      const { bytesRead } = await handle.read(buf, 0, buf.length, off);
      if (bytesRead === 0) throw new AuditLogShrankError();
      await io.stdout.write(buf.subarray(0, bytesRead));
      off += bytesRead;
    }
    await io.stdout.closeWrite();
    return 0;
  } catch (e) {
    // An I/O error's text would name paths and errno details the host need not see.
    const msg = e instanceof AuditLogShrankError ? e.message : "cannot read the audit log";
    await io.stderr.write(new TextEncoder().encode(`qubes-air: ${msg}\n`)).catch(() => {});
    return 1;
  } finally {
    await handle?.close();
  }
}
