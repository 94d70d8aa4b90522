/**
 * `qubes.Gpg2` on the device: split-gpg2's server. Connects to the device's real gpg-agent on
 * its restricted socket (agent-extra-socket), runs core/gpg/assuan-filter.ts between the caller
 * and it, asks for a physical confirmation before every PKSIGN/PKDECRYPT (with what the device
 * itself knows: the key from its own keyring, the operation, the calling qube, the digest), and
 * writes every confirmed operation and every filtered connection to the audit log: the request
 * record is on disk before PKSIGN/PKDECRYPT goes to gpg-agent, or the client gets
 * ERR_UNAUDITED_LINE and nothing is forwarded (audit/operation.ts); the result record follows.
 *
 * The filter is turn-based, so this loop reads only from the party whose turn it is: a client
 * cannot make the device buffer more than one read ahead.
 * Must never: forward anything the filter did not emit, or show client-supplied text.
 */
import type { ConfirmRequest, FilterEffect } from "../../../core/gpg/assuan-filter.ts";
import { AssuanFilter } from "../../../core/gpg/assuan-filter.ts";
import { describeKey } from "../../../core/gpg/keyring.ts";
import { Service } from "../../../core/qrexec/services.ts";
import { platform } from "../../../platform/index.ts";
import type { ByteSink, ByteSource, ByteStream } from "../../../transport/transport.ts";
import type { ConfirmationManager } from "../../confirmation/manager.ts";
import { type Log, makeLog } from "../../log.ts";
import type { AuditWriter } from "../audit/log.ts";
import { type AuditedRequest, recordRequest, recordResult } from "../audit/operation.ts";
import { type AgentSockets, agentSockets, type GpgTools, loadKeyring } from "./gpg-tools.ts";

export interface GpgServiceIo {
  readonly stdin: ByteSource;
  readonly stdout: ByteSink;
  readonly stderr: ByteSink;
}

export interface Gpg2Context extends GpgTools {
  /** The calling qube (QREXEC_REMOTE_DOMAIN / the call's source), validated by the caller. */
  readonly source: string;
  /** The GnuPG home whose agent serves the keys (normally holding secret subkeys only). */
  readonly gnupgHome: string;
  readonly confirm: ConfirmationManager;
  readonly audit: AuditWriter;
  /** Connect here instead of the sockets gpgconf names (tests put a recording proxy between). */
  readonly sockets?: AgentSockets;
  /** Serve primary keys too (lets a client certify keys). Default false. */
  readonly allowPrimaryKeys?: boolean;
  readonly log?: Log;
}

/** Serves one connection; resolves with the exit status (0 after BYE/EOF, 1 otherwise). */
export async function serveGpg2(io: GpgServiceIo, ctx: Gpg2Context): Promise<number> {
  const log = ctx.log ?? makeLog();
  const audit = (operation: string, decision: string, result: string, key = "", detail = "") =>
    ctx.audit
      .append({ client: ctx.source, service: Service.Gpg2, operation, key, decision, result, detail })
      .catch(() => log("audit-append-failed", { service: Service.Gpg2 }));

  let agent: ByteStream;
  let keys: Awaited<ReturnType<typeof loadKeyring>>;
  let sockets: Awaited<ReturnType<typeof agentSockets>>;
  try {
    keys = await loadKeyring(ctx.gnupgHome, ctx);
    sockets = ctx.sockets ?? (await agentSockets(ctx.gnupgHome, ctx));
    agent = await platform.unixConnect(sockets.extra).catch(async () => {
      // The agent may have exited (idle, killed): start it again once.
      const fresh = await agentSockets(ctx.gnupgHome, ctx, true);
      sockets = ctx.sockets ?? fresh;
      return platform.unixConnect(sockets.extra);
    });
  } catch {
    log("gpg2-agent-unavailable", { client: ctx.source });
    await io.stderr.write(new TextEncoder().encode("qubes-air: the device's gpg-agent is not available\n"));
    await io.stdout.closeWrite().catch(() => {});
    return 1;
  }

  const filter = new AssuanFilter({
    lookupKey: (g) => keys.byGrip.get(g),
    listKeys: () => keys.primaries.flatMap((p) => [p.key, ...p.subkeys]),
    allowPrimaryKeys: ctx.allowPrimaryKeys ?? false,
  });
  const conn: { unrestricted: ByteStream | null } = { unrestricted: null };
  let status = 1;
  /** The request record of the confirmed operation in flight. */
  let current: AuditedRequest | null = null;

  const apply = async (effects: FilterEffect[]): Promise<boolean> => {
    for (const e of effects) {
      switch (e.kind) {
        case "client":
          await io.stdout.write(e.data);
          break;
        case "agent":
          if (e.socket === "unrestricted") {
            conn.unrestricted ??= await openUnrestricted(sockets.normal);
            await conn.unrestricted.write(e.data);
          } else await agent.write(e.data);
          break;
        case "result":
          if (current)
            await recordResult(ctx.audit, current, e.ok ? "ok" : "error", detailOf(e.request), log);
          current = null;
          break;
        case "close":
          if (e.reason === "filtered") {
            log("gpg2-filtered", { client: ctx.source, violation: e.violation?.reason, command: e.command });
            await audit("filtered", "refused", e.violation?.reason ?? "filtered", "", e.command ?? "");
          }
          status = e.reason === "bye" || e.reason === "client-eof" ? 0 : 1;
          return false;
        case "confirm":
          break; // handled by the loop once the effects before it are out
      }
    }
    return true;
  };

  try {
    let running = true;
    while (running) {
      const waiting = filter.awaiting;
      if (waiting === "closed") break;
      let effects: FilterEffect[];
      if (waiting === "client") {
        const c = await io.stdin.read();
        effects = c ? filter.feedClient(c) : filter.clientEof();
      } else if (waiting === "agent" || waiting === "agent-unrestricted") {
        const src = waiting === "agent" ? agent : conn.unrestricted;
        const c = await src!.read().catch(() => null);
        effects = c ? filter.feedAgent(c) : filter.agentEof();
      } else {
        const pending = pendingConfirm(filter);
        const d = await ctx.confirm.decide(confirmRequestFor(pending, ctx.source));
        if (!d.approved) {
          await audit(pending.operation, d.decision, "refused", describeKey(pending.key), detailOf(pending));
          effects = filter.confirmResult(false);
        } else {
          // The request record goes to disk before the held command goes to gpg-agent.
          current = await recordRequest(
            ctx.audit,
            {
              client: ctx.source,
              service: Service.Gpg2,
              operation: pending.operation,
              key: describeKey(pending.key),
              decision: d.decision,
              detail: detailOf(pending),
            },
            log,
          );
          effects = current ? filter.confirmResult(true) : filter.refuseUnaudited();
        }
      }
      running = await apply(effects);
      if (conn.unrestricted && filter.awaiting !== "agent-unrestricted") {
        conn.unrestricted.close();
        conn.unrestricted = null;
      }
    }
  } catch (e) {
    log("gpg2-connection-error", { client: ctx.source, error: (e as Error).name });
  } finally {
    agent.close();
    conn.unrestricted?.close();
    await io.stdout.closeWrite().catch(() => {});
  }
  return status;
}

/** The request the filter is waiting on (it was the last `confirm` effect it emitted). */
function pendingConfirm(filter: AssuanFilter): ConfirmRequest {
  const r = filter.pendingConfirmation;
  if (!r) throw new Error("BUG: filter awaits a confirmation it did not ask for");
  return r;
}

function confirmRequestFor(r: ConfirmRequest, client: string) {
  return {
    client,
    service: Service.Gpg2,
    operation: r.operation,
    key: describeKey(r.key),
    hashAlgo: r.hash?.name,
    digestPrefix: r.hash?.hex.slice(0, 8),
    digestSuffix: r.hash?.hex.slice(-8),
    digest: r.hash?.hex,
  };
}

function detailOf(r: ConfirmRequest): string {
  return r.hash ? `${r.hash.name} ${r.hash.hex.slice(0, 8)}…${r.hash.hex.slice(-8)}` : "";
}

/** A one-off connection to the normal socket; its greeting is read and dropped here. */
async function openUnrestricted(path: string): Promise<ByteStream> {
  const s = await platform.unixConnect(path);
  const fail = (why: string): never => {
    s.close();
    throw new Error(why);
  };
  let buf = "";
  for (;;) {
    const c = await s.read();
    if (!c) fail("no greeting from gpg-agent");
    buf += new TextDecoder().decode(c!);
    if (buf.length > 4096) fail("gpg-agent greeting too long");
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (l.startsWith("#")) continue;
      if (!l.startsWith("OK") || buf !== "") fail("unexpected greeting from gpg-agent");
      return s;
    }
  }
}
