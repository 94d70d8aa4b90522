/**
 * A call from the host (one vchan channel): decode the request, decide by the device's policy
 * (ask -> the agent's one ConfirmationManager, and the decision and outcome to the audit log),
 * then run a built-in service, a built-in program (root-shell.ts) or the service file found as
 * qrexec finds it, streaming stdin/stdout/stderr and the exit status (calls/callee-process.ts).
 *
 *   malformed request       the channel is reset (a peer fault; nothing runs)
 *   target is not us        126, nothing runs (the host's registry points at the wrong device)
 *   deny / ask refused      126, nothing runs
 *   ask approved but its audit request record cannot be written
 *                           126 with a message on stderr, nothing runs
 *   no such service         127
 * Must never: run anything before policy allowed it, leave a service process running after its
 * channel ended, or log peer bytes (the names logged are validated qrexec names).
 */

import { finishCall } from "../../calls/callee.ts";
import { runCallProcess } from "../../calls/callee-process.ts";
import {
  type CallRequest,
  decodeCallRequest,
  EXIT_NOT_FOUND,
  EXIT_REFUSED,
} from "../../core/qrexec/call-protocol.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { ResetReason } from "../../core/vchan/messages.ts";
import { platform } from "../../platform/index.ts";
import type { Config } from "../config.ts";
import type { AgentConfirmer } from "../confirmation/confirmer.ts";
import type { Decision } from "../confirmation/manager.ts";
import type { SessionRefusals } from "../link/sessions.ts";
import { errorCode, type Log } from "../log.ts";
import { AUDIT_REFUSAL_MESSAGE } from "./audit/operation.ts";
import type { Builtin } from "./builtins.ts";
import type { PolicyStore } from "./policy.ts";
import { BUILTIN_PROGRAMS } from "./root-shell.ts";
import { findService, serviceArgv, serviceEnv } from "./service-lookup.ts";

export interface CallDeps {
  readonly config: Config;
  readonly policy: PolicyStore;
  readonly confirmer: AgentConfirmer;
  /** Services the agent answers itself (builtins.ts, gpg-builtins.ts). */
  readonly builtins: ReadonlyMap<string, Builtin>;
  readonly log: Log;
}

export function serveCall(d: CallDeps, channel: Channel, meta: Uint8Array, session: SessionRefusals): void {
  let request: CallRequest;
  try {
    request = decodeCallRequest(meta);
  } catch (error) {
    // A peer may send malformed requests without end: a few lines, then a count at session-down.
    if (session.refusedCall()) d.log("call-refused", { code: errorCode(error) });
    channel.reset(ResetReason.REFUSED);
    return;
  }
  void handle(d, channel, request).catch((error) => {
    d.log("call-failed", {
      source: request.source,
      service: `${request.service}+${request.arg}`,
      code: errorCode(error),
    });
    channel.close();
  });
}

async function handle(d: CallDeps, channel: Channel, r: CallRequest): Promise<void> {
  const fields = { source: r.source, service: `${r.service}+${r.arg}` };
  if (r.target !== d.config.name) {
    d.log("call", { ...fields, decision: "deny", reason: "wrong-target", status: EXIT_REFUSED });
    await finishCall(channel, EXIT_REFUSED);
    return;
  }
  const decision = await d.policy.decide(r.source, r.service, r.arg);
  let allowed = decision.action === "allow";
  let asked: Decision | null = null;
  if (decision.action === "ask") {
    const answer = await d.confirmer.decide({
      kind: "call",
      source: r.source,
      service: r.service,
      arg: r.arg,
    });
    allowed = answer.approved;
    asked = answer.decision;
  }
  const why = {
    decision: decision.action === "ask" ? (allowed ? "ask-approved" : "ask-refused") : decision.action,
    rule: decision.rule ?? undefined,
    reason: decision.reason ?? undefined,
  };
  if (!allowed) {
    d.log("call", { ...fields, ...why, status: EXIT_REFUSED });
    if (asked) await d.confirmer.recordCall(r, asked, "refused");
    await finishCall(channel, EXIT_REFUSED);
    return;
  }
  // An approved ask runs only once its request record is on disk.
  const audited = asked ? await d.confirmer.beginCall(r, asked) : null;
  if (asked && !audited) {
    d.log("call", { ...fields, ...why, unaudited: "yes", status: EXIT_REFUSED });
    await finishCall(channel, EXIT_REFUSED, `qubes-air: ${AUDIT_REFUSAL_MESSAGE}\n`);
    return;
  }
  let status: number | null = null;
  try {
    status = await run(d, channel, r, fields, why);
  } finally {
    await audited?.finish(status === null ? "failed" : `exit ${status}`);
  }
}

async function run(
  d: CallDeps,
  channel: Channel,
  r: CallRequest,
  fields: Record<string, string>,
  why: Record<string, string | undefined>,
): Promise<number> {
  const builtin = d.builtins.get(r.service);
  let status: number;
  if (builtin) {
    status = await builtin(channel, r, { ...d.config, log: d.log });
  } else {
    const found = BUILTIN_PROGRAMS.has(r.service)
      ? null
      : findService(d.config.serviceDirs, r.service, r.arg);
    if (found && found.kind !== "found") {
      d.log("call", {
        ...fields,
        ...why,
        status: EXIT_NOT_FOUND,
        ...(found.kind === "not-executable" ? { notExecutable: found.path } : {}),
      });
      await finishCall(channel, EXIT_NOT_FOUND);
      return EXIT_NOT_FOUND;
    }
    const env = serviceEnv(r);
    status = await runCallProcess(channel, async () => {
      const argv = found ? serviceArgv(found.path, r.arg) : BUILTIN_PROGRAMS.get(r.service)!;
      // runCallProcess stops it when the channel closes (a reset or a lost session).
      return platform.spawn(argv, { env });
    });
  }
  d.log("call", { ...fields, ...why, status });
  return status;
}
