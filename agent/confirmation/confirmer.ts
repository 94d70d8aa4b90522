/**
 * How the device's user approves what policy marks `ask`, a pair-code pairing and (inside the
 * split-GPG services) each signature and decryption: all through the agent's ONE
 * ConfirmationManager (agent/confirmation/manager.ts), so there is one prompt at a time across
 * everything, a timeout means deny, and each approval answers one request. Every decision taken
 * here is written to the audit log; an approved `ask` call runs only once its request record is
 * on disk (beginCall; audit/operation.ts), and its result record follows.
 *
 * The inputs that are not hardware live here too: "deny" (nobody is there to ask) and "command"
 * (runs a program that exits 0 to approve; it learns the request from QUBES_AIR_CONFIRM_*).
 * The physical ones (button, console, hid, the simulated socket) are opened in confirm-inputs.ts.
 * Must never: approve on an error or a timeout, or show text a peer supplied (names shown are
 * validated qrexec names, our own words and key prefixes).
 */
import type { Verdict } from "../../hw/input.ts";
import { platform } from "../../platform/index.ts";
import type { Log } from "../log.ts";
import type { AuditEntry, AuditWriter } from "../services/audit/log.ts";
import { recordRequest, recordResult } from "../services/audit/operation.ts";
import {
  type ConfirmationManager,
  type ConfirmationRequest,
  type ConfirmInput,
  type Decision,
  pairingAttemptText,
} from "./manager.ts";

export type ConfirmRequest =
  | { readonly kind: "call"; readonly source: string; readonly service: string; readonly arg: string }
  | {
      readonly kind: "pairing";
      readonly code: string;
      readonly peerKey: string;
      /** Which failed-attempt slot this is (agent/link/code-pairing-guard.ts). */
      readonly attempt?: number;
    };

export interface Confirmer {
  /** Resolves true only when the user approved this one request. Never rejects. */
  confirm(request: ConfirmRequest): Promise<boolean>;
}

export interface ConfirmDecision {
  readonly approved: boolean;
  readonly decision: Decision;
}

/** The manager's view of a call or pairing request. */
export function managerRequest(r: ConfirmRequest): ConfirmationRequest {
  if (r.kind === "pairing") {
    return {
      client: r.peerKey.slice(0, "qa-pub:".length + 8),
      service: "pairing",
      operation: "pair",
      key: r.peerKey,
      pairing: {
        code: r.code,
        peerKey: r.peerKey,
        ...(r.attempt !== undefined ? { attempt: r.attempt } : {}),
      },
    };
  }
  // The key makes an approval window (if set) cover exactly this service and argument.
  return {
    client: r.source,
    service: r.service,
    operation: "call",
    key: `${r.service}+${r.arg}`,
    argument: r.arg,
  };
}

/** The manager plus the audit log, for policy asks (serve-call.ts) and pairings (sessions.ts). */
export class AgentConfirmer implements Confirmer {
  constructor(
    readonly manager: ConfirmationManager,
    private readonly audit: AuditWriter | null,
    private readonly log: Log,
  ) {}

  decide(request: ConfirmRequest): Promise<ConfirmDecision> {
    return this.manager.decide(managerRequest(request));
  }

  async confirm(request: ConfirmRequest): Promise<boolean> {
    const d = await this.decide(request);
    if (request.kind === "pairing") {
      await this.record({
        client: managerRequest(request).client,
        service: "pairing",
        operation: "pair-code",
        key: request.peerKey,
        decision: d.decision,
        result: d.approved ? "approved" : "refused",
      });
    }
    return d.approved;
  }

  /**
   * The request record of an approved policy `ask` call, on disk before the call runs; then
   * finish() writes its result. null: the record could not be written, so the call must not run.
   */
  async beginCall(
    r: { source: string; service: string; arg: string },
    decision: Decision,
  ): Promise<{ finish(result: string): Promise<void> } | null> {
    const audit = this.audit;
    if (!audit) return { finish: async () => {} };
    const arg = r.arg === "" ? "" : `arg=${r.arg}`;
    const req = await recordRequest(
      audit,
      { client: r.source, service: r.service, operation: "call", decision, detail: arg },
      this.log,
    );
    if (!req) return null;
    return { finish: (result) => recordResult(audit, req, result, arg, this.log) };
  }

  /** One audit record for a refused policy `ask`: its decision and what came of it. */
  recordCall(r: { source: string; service: string; arg: string }, decision: Decision, result: string) {
    return this.record({
      client: r.source,
      service: r.service,
      operation: "call",
      decision,
      result,
      detail: r.arg === "" ? "" : `arg=${r.arg}`,
    });
  }

  async record(entry: AuditEntry): Promise<void> {
    if (!this.audit) return;
    await this.audit.append(entry).catch(() => this.log("audit-append-failed", { service: entry.service }));
  }
}

/** `{"kind":"deny"}`: nobody is there to ask, so every request is refused at once. */
export class DenyInput implements ConfirmInput {
  readonly description = "deny (no confirmation input configured)";
  waitForVerdict(): Promise<Verdict> {
    return Promise.resolve("deny");
  }
  close(): void {}
}

/** The environment a confirm command sees, besides the agent's own. */
export function confirmEnv(r: ConfirmationRequest): Record<string, string> {
  // The request code, as sys-remote's notification and the caller's stderr show it.
  return r.code === undefined ? kindEnv(r) : { QUBES_AIR_CONFIRM_REQUEST: r.code, ...kindEnv(r) };
}

function kindEnv(r: ConfirmationRequest): Record<string, string> {
  if (r.pairing) {
    return {
      QUBES_AIR_CONFIRM_KIND: "pairing",
      QUBES_AIR_CONFIRM_CODE: r.pairing.code,
      QUBES_AIR_CONFIRM_PEER_KEY: r.pairing.peerKey,
      QUBES_AIR_CONFIRM_TEXT: `Pair with host ${r.pairing.peerKey.slice(0, 19)}…? Code ${r.pairing.code}: approve only if the host shows the same code${pairingAttemptText(r.pairing.attempt)}`,
    };
  }
  if (r.argument !== undefined) {
    return {
      QUBES_AIR_CONFIRM_KIND: "call",
      QUBES_AIR_CONFIRM_SOURCE: r.client,
      QUBES_AIR_CONFIRM_SERVICE: r.service,
      QUBES_AIR_CONFIRM_ARGUMENT: r.argument,
      QUBES_AIR_CONFIRM_TEXT: `Allow ${r.client} to call ${r.service}+${r.argument}?`,
    };
  }
  const digest =
    r.digestPrefix !== undefined && r.digestSuffix !== undefined
      ? ` ${r.hashAlgo ?? "digest"} ${r.digestPrefix}…${r.digestSuffix}`
      : "";
  return {
    QUBES_AIR_CONFIRM_KIND: "gpg",
    QUBES_AIR_CONFIRM_SOURCE: r.client,
    QUBES_AIR_CONFIRM_SERVICE: r.service,
    QUBES_AIR_CONFIRM_OPERATION: r.operation,
    QUBES_AIR_CONFIRM_KEY: r.key,
    QUBES_AIR_CONFIRM_TEXT: `Allow ${r.client} ${r.operation} (${r.service}) with ${r.key}${digest}?`,
  };
}

/**
 * `{"kind":"command"}`: runs the program once per request; exit 0 approves, any other exit
 * denies; a failure to start, its own timeout, or the manager's abort (the confirmation timeout)
 * kills it and counts as no approval.
 */
export class CommandInput implements ConfirmInput {
  readonly description: string;

  constructor(
    private readonly argv: readonly string[],
    private readonly timeoutMs: number,
  ) {
    this.description = `command ${argv[0]}`;
  }

  async waitForVerdict(signal: AbortSignal, request: ConfirmationRequest): Promise<Verdict> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !k.startsWith("QREXEC") && !k.startsWith("QUBES_AIR_CONFIRM_")) env[k] = v;
    }
    Object.assign(env, confirmEnv(request));
    const child = await platform.spawn(this.argv, {
      env,
      stdin: "ignore",
      stdout: "ignore",
      stderr: "inherit",
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stopped = new Promise<"stopped">((resolve) => {
      timer = setTimeout(() => resolve("stopped"), this.timeoutMs);
      if (signal.aborted) resolve("stopped");
      else signal.addEventListener("abort", () => resolve("stopped"), { once: true });
    });
    const result = await Promise.race([child.exited, stopped]);
    clearTimeout(timer);
    if (result === "stopped") {
      child.kill("SIGKILL");
      throw signal.aborted ? signal.reason : new Error("the confirm command timed out");
    }
    return result.code === 0 ? "approve" : "deny";
  }

  close(): void {}
}
