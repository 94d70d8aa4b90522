/**
 * `qubes.SshAgent` as a built-in service (after policy, like any service): the split-SSH filter
 * (ssh-agent-service.ts) on the call's streams, with the device's own ssh-agent
 * (device-agent.ts) behind it. The source is the call's validated source qube.
 * Must never: take the client's name from the payload.
 */
import { Service } from "../../../core/qrexec/services.ts";
import type { ConfirmationManager } from "../../confirmation/manager.ts";
import type { Log } from "../../log.ts";
import type { AuditLog } from "../audit/log.ts";
import type { Builtin } from "../builtins.ts";
import { withIo } from "../gpg-builtins.ts";
import type { DeviceSshAgent } from "./device-agent.ts";
import { serveSshAgent } from "./ssh-agent-service.ts";

export interface SplitSshDeps {
  readonly device: DeviceSshAgent;
  readonly confirm: ConfirmationManager;
  readonly audit: AuditLog;
  readonly log: Log;
}

export function splitSshBuiltins(d: SplitSshDeps): ReadonlyMap<string, Builtin> {
  return new Map<string, Builtin>([
    [
      Service.SshAgent,
      (channel, r) =>
        withIo(channel, r, d.log, (io) =>
          serveSshAgent(io, {
            source: r.source,
            device: d.device,
            confirm: d.confirm,
            audit: d.audit,
            log: d.log,
          }),
        ),
    ],
  ]);
}
