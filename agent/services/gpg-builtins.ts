/**
 * The split-GPG services and the audit-log fetch as built-in services (after policy, like any
 * service; docs/split-gpg.md "Wiring"):
 *
 *   qubes.Gpg2          split-gpg2: the gpg-agent Assuan protocol, filtered (agent/services/gpg/gpg2-service.ts)
 *   qubes.Gpg           split-gpg v1: header + fd frames, canonical gpg argv (agent/services/gpg/gpg1-service.ts)
 *   qubes.GpgImportKey  public keys only into the served keyring, after a press (agent/services/gpg/import-key-service.ts)
 *   qubesair.AuditLog   the audit log's bytes, for `qubes-air logs QUBE` (agent/services/audit/fetch.ts)
 *   qubesair.Approve    an approver qube's grant standing in for the press (approve.ts), when the
 *                       agent keeps grants (the manager must be given the same ApproverGrants)
 *   qubesair.Unlock     the PIN that opens a sealed key (agent/keylock/unlock-service.ts)
 *
 * With a sealed key (agent/keylock/key-lock.ts) the GPG services serve the opened home while the
 * device is unlocked; while it is locked they refuse at once, with the fix on the caller's stderr
 * and a journal line, before anything reaches gpg.
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
import type { ApproverGrants } from "../confirmation/approver-grants.ts";
import type { ConfirmationManager } from "../confirmation/manager.ts";
import type { KeyLock, KeyUse } from "../keylock/key-lock.ts";
import { serveUnlock } from "../keylock/unlock-service.ts";
import { errorCode, type Log } from "../log.ts";
import { serveApprove } from "./approve.ts";
import { serveAuditFetch } from "./audit/fetch.ts";
import type { AuditLog } from "./audit/log.ts";
import type { Builtin } from "./builtins.ts";
import { type Gpg1Limits, serveGpg1 } from "./gpg/gpg1-service.ts";
import { type GpgServiceIo, serveGpg2 } from "./gpg/gpg2-service.ts";
import { serveGpgImportKey } from "./gpg/import-key-service.ts";

export interface SplitGpgDeps {
  readonly gnupgHome: string;
  readonly confirm: ConfirmationManager;
  readonly audit: AuditLog;
  readonly log: Log;
  readonly gpg1Limits?: Gpg1Limits;
  /** The grants `confirm` asks before prompting; qubesair.Approve is served only with them. */
  readonly grants?: ApproverGrants;
  /** The PIN lock, when gpg-setup --pin sealed the key; null serves gnupgHome as it is. */
  readonly keyLock?: KeyLock | null;
  /** This device's name, for the message that says how to unlock it. */
  readonly deviceName?: string;
}

/** The home to serve for one connection, or null (and the caller told) while locked. */
async function acquire(d: SplitGpgDeps, r: CallRequest, io: GpgServiceIo): Promise<KeyUse | null> {
  if (!d.keyLock) return { home: d.gnupgHome, release: () => {} };
  const use = d.keyLock.use();
  if (use) return use;
  const state = d.keyLock.current;
  d.log("gpg-locked", { client: r.source, service: r.service, state });
  const fix =
    state === "wiped"
      ? "its key was wiped after too many wrong PINs; set a key up again on the device"
      : `unlock it first: qubes-air unlock ${d.deviceName ?? "DEVICE"} (in sys-remote)`;
  await io.stderr
    .write(new TextEncoder().encode(`qubes-air: the device's key is locked; ${fix}\n`))
    .catch(() => {});
  await io.stdout.closeWrite().catch(() => {});
  return null;
}

/** Runs `serve` with the served home held for the connection's length. */
async function withHome(
  d: SplitGpgDeps,
  r: CallRequest,
  io: GpgServiceIo,
  serve: (home: string) => Promise<number>,
): Promise<number> {
  const use = await acquire(d, r, io);
  if (!use) return 1;
  try {
    return await serve(use.home);
  } finally {
    use.release();
  }
}

export function splitGpgBuiltins(d: SplitGpgDeps): ReadonlyMap<string, Builtin> {
  const grants = d.grants;
  const approve: [string, Builtin][] = grants
    ? [
        [
          Service.Approve,
          (channel, r) =>
            withIo(channel, r, d.log, (io) =>
              serveApprove(io, { approver: r.source, client: r.arg, grants, audit: d.audit, log: d.log }),
            ),
        ],
      ]
    : [];
  return new Map<string, Builtin>([
    ...approve,
    [
      Service.Gpg2,
      (channel, r) =>
        withIo(channel, r, d.log, (io) =>
          withHome(d, r, io, (gnupgHome) =>
            serveGpg2(io, { source: r.source, gnupgHome, confirm: d.confirm, audit: d.audit, log: d.log }),
          ),
        ),
    ],
    [
      Service.Gpg,
      (channel, r) =>
        withIo(channel, r, d.log, (io) =>
          withHome(d, r, io, (gnupgHome) =>
            serveGpg1(io, {
              source: r.source,
              gnupgHome,
              confirm: d.confirm,
              audit: d.audit,
              log: d.log,
              ...(d.gpg1Limits ? { limits: d.gpg1Limits } : {}),
            }),
          ),
        ),
    ],
    [
      Service.GpgImportKey,
      (channel, r) =>
        withIo(channel, r, d.log, (io) =>
          serveGpgImportKey(io, {
            source: r.source,
            gnupgHome: d.gnupgHome,
            confirm: d.confirm,
            audit: d.audit,
            log: d.log,
          }),
        ),
    ],
    [
      Service.AuditLog,
      (channel, r) => withIo(channel, r, d.log, (io) => serveAuditFetch(io, { audit: d.audit })),
    ],
    [
      Service.Unlock,
      (channel, r) =>
        withIo(channel, r, d.log, (io) =>
          serveUnlock(io, { lock: d.keyLock ?? null, source: r.source, log: d.log }),
        ),
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
