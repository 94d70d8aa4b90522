/**
 * The split-GPG services and the audit-log fetch as built-in services (after policy, like any
 * service; docs/split-gpg.md "Wiring"):
 *
 *   qubes.Gpg2          split-gpg2: the gpg-agent Assuan protocol, filtered (agent/services/gpg/gpg2-service.ts)
 *   qubes.Gpg           split-gpg v1: header + fd frames, canonical gpg argv (agent/services/gpg/gpg1-service.ts)
 *   qubesair.AuditLog   the audit log's bytes, for `qubes-air logs QUBE` (agent/services/audit/fetch.ts)
 *
 * Each runs on the call channel adapted to `{stdin, stdout, stderr}` streams (call-output.ts);
 * the source is the call's validated source qube, never anything from the payload. Every
 * signature and decryption is confirmed through the agent's one ConfirmationManager and written
 * to the audit log by the services themselves.
 * Must never: take the client's name or key description from the payload.
 */

import { CallOutput } from "../../calls/callee.ts";
import type { CallChannel } from "../../calls/channel.ts";
import { channelSource, drain } from "../../calls/channel.ts";
import type { CallRequest } from "../../core/qrexec/call-protocol.ts";
import { EXIT_PROBLEM } from "../../core/qrexec/call-protocol.ts";
import { Service } from "../../core/qrexec/services.ts";
import type { ConfirmationManager } from "../confirmation/manager.ts";
import { errorCode, type Log } from "../log.ts";
import { serveAuditFetch } from "./audit/fetch.ts";
import type { AuditLog } from "./audit/log.ts";
import type { Builtin } from "./builtins.ts";
import { type Gpg1Limits, serveGpg1 } from "./gpg/gpg1-service.ts";
import { type GpgServiceIo, serveGpg2 } from "./gpg/gpg2-service.ts";

export interface SplitGpgDeps {
  readonly gnupgHome: string;
  readonly confirm: ConfirmationManager;
  readonly audit: AuditLog;
  readonly log: Log;
  readonly gpg1Limits?: Gpg1Limits;
}

export function splitGpgBuiltins(d: SplitGpgDeps): ReadonlyMap<string, Builtin> {
  return new Map<string, Builtin>([
    [
      Service.Gpg2,
      (channel, r) =>
        withIo(channel, r, d.log, (io) =>
          serveGpg2(io, {
            source: r.source,
            gnupgHome: d.gnupgHome,
            confirm: d.confirm,
            audit: d.audit,
            log: d.log,
          }),
        ),
    ],
    [
      Service.Gpg,
      (channel, r) =>
        withIo(channel, r, d.log, (io) =>
          serveGpg1(io, {
            source: r.source,
            gnupgHome: d.gnupgHome,
            confirm: d.confirm,
            audit: d.audit,
            log: d.log,
            ...(d.gpg1Limits ? { limits: d.gpg1Limits } : {}),
          }),
        ),
    ],
    [
      Service.AuditLog,
      (channel, r) => withIo(channel, r, d.log, (io) => serveAuditFetch(io, { audit: d.audit })),
    ],
  ]);
}

/** Runs `serve` on the channel's streams, then sends its exit status (125 if it threw). */
export async function withIo(
  channel: CallChannel,
  r: CallRequest,
  log: Log,
  serve: (io: GpgServiceIo) => Promise<number>,
): Promise<number> {
  const out = new CallOutput(channel);
  let status: number;
  try {
    status = await serve({ stdin: channelSource(channel), stdout: out.stdout, stderr: out.stderr });
  } catch (error) {
    log("builtin-failed", { source: r.source, service: r.service, code: errorCode(error) });
    status = EXIT_PROBLEM;
  }
  await out.finish(status);
  void drain(channel);
  return status;
}
