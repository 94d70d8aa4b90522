/**
 * Physical confirmation of split-GPG operations (DESIGN.md "Split-GPG on the device";
 * reference/split-gpg.md "Implications" 4). What the user is asked comes only from the device:
 * the client qube as the relay reported it, the operation, the key's UID and fingerprint from
 * the device's own keyring, and for signing the hash algorithm and the digest's first and last
 * 8 hex digits.
 *
 * - One prompt at a time: a request while one is pending is refused at once ("busy"), so a
 *   flood can never queue prompts behind the one on screen.
 * - Timeout (default 30 s), an input error or an abort all deny. The indicator shows `waiting`
 *   while a prompt is pending.
 * - An approval answers exactly the request that asked: each prompt waits for the next
 *   deliberate action after it started (hw/input.ts), and nothing is remembered afterwards,
 *   unless the optional per-client+operation+key window (at most 60 s, default off) is set.
 * - After a denial (or timeout) the same client is refused without a prompt for a short
 *   cooldown (default 5 s), so "no" is never followed by an immediate re-prompt (#4790).
 * - Conflicts: a button cannot say which request it approves. So when a request from another
 *   client arrives while a prompt is on screen, the prompt is withdrawn and both are refused
 *   ("conflict", its own LED pattern); the same when it arrives within a short window after a
 *   prompt that was approved (the press may have been meant for it: the owner is told). A qube
 *   that races the owner's request gets nothing, and the owner sees why nothing happened.
 * - An approver qube's grant (approver-grants.ts, only if the agent was given the grants) stands
 *   in for the press for the signatures it covers; everything else still waits for the press.
 * Must never: approve on a timeout or an error, or show text a client supplied.
 */
import { ConfigError } from "../../core/errors.ts";
import { REQUEST_CODE_LENGTH, requestCodeOf } from "../../core/qrexec/announcement.ts";
import { PAIR_CODE_LOCK_MS, PAIR_CODE_MAX_FAILURES } from "../../core/wire/limits.ts";
import type { Indicator, Verdict } from "../../hw/input.ts";
import { platform } from "../../platform/index.ts";
import { type Log, makeLog } from "../log.ts";
import type { ApproverGrants } from "./approver-grants.ts";

export interface ConfirmationRequest {
  /** The calling qube (the relay's QREXEC_REMOTE_DOMAIN), never a name from the payload. */
  readonly client: string;
  readonly service: string;
  /** PKSIGN, PKDECRYPT, sign, decrypt, sign+encrypt. */
  readonly operation: string;
  /** The device's own description of the key (keyring.ts describeKey). */
  readonly key: string;
  readonly hashAlgo?: string;
  readonly digestPrefix?: string;
  readonly digestSuffix?: string;
  /** The whole digest (upper-case hex) for a signature the device sees only as a digest (PKSIGN). */
  readonly digest?: string;
  /**
   * A v1 signature's data digests (algo -> upper-case hex), read before the confirmation only
   * when a digest grant for the client waits (agent/services/gpg/v1-preread.ts).
   */
  readonly dataDigests?: ReadonlyMap<string, string>;
  /** A policy `ask` for a call (operation "call"): the call's argument, after SERVICE+. */
  readonly argument?: string;
  /**
   * A pair-code pairing (operation "pair"): the 6 digits both ends show, the host's key, and
   * which failed-attempt slot this is (1..PAIR_CODE_MAX_FAILURES; code-pairing-guard.ts).
   */
  readonly pairing?: { readonly code: string; readonly peerKey: string; readonly attempt?: number };
  /**
   * The prompt's request code (core/qrexec/announcement.ts): set by the manager for each prompt
   * it shows, for inputs that display the request; a caller's value is replaced.
   */
  readonly code?: string;
}

/**
 * What gives the verdict: any hw/input.ts ApprovalInput fits (it ignores the request); the
 * agent's own `command` confirmer also reads the request, to tell its program what is asked.
 */
export interface ConfirmInput {
  readonly description: string;
  waitForVerdict(signal: AbortSignal, request: ConfirmationRequest): Promise<Verdict>;
  close(): void;
}

export type Decision =
  | "approved"
  | "denied"
  | "timeout"
  | "busy"
  | "cooldown"
  | "window"
  | "conflict"
  | "error"
  /** An approver qube's grant stood in for the press (approver-grants.ts); the approver's name. */
  | `approver:${string}`;

export interface ConfirmationOptions {
  readonly input: ConfirmInput;
  readonly indicator: Indicator;
  readonly timeoutMs?: number;
  readonly cooldownMs?: number;
  /** Per client+operation+key approval window; 0 (default) prompts every time; at most 60 s. */
  readonly windowMs?: number;
  /**
   * After a prompt was approved, how long a request from another client still counts as a
   * conflict (default CONFLICT_WINDOW_MS; 0: only while the prompt is on screen).
   */
  readonly conflictWindowMs?: number;
  /** How long `approved`/`denied` stays on the indicator before `idle` (default 1500 ms). */
  readonly resultMs?: number;
  readonly log?: Log;
  readonly monotonicMs?: () => number;
  /** Request codes (default: random, requestCodeOf); tests may fix them. */
  readonly newCode?: () => string;
  /**
   * Told when a prompt starts waiting and of every decision that involved the person or an
   * approval: approved (also through the window), denied, timeout, conflict. `id` matches the
   * device's confirm-request log line. Must not throw (the agent's announcer never does).
   */
  readonly onEvent?: (event: ConfirmationEvent) => void;
  /**
   * Grants by approver qubes (qubesair.Approve): asked before any prompt; without it (the
   * default) only the press approves.
   */
  readonly grants?: ApproverGrants;
}

export interface ConfirmationEvent {
  readonly kind: "waiting" | "approved" | "denied" | "timeout" | "conflict";
  readonly id: number;
  /** The request code: the same for a prompt's waiting and its decision. */
  readonly code: string;
  readonly request: ConfirmationRequest;
}

export const MAX_WINDOW_MS = 60_000;
/**
 * A person reacts to a prompt in about a second; two requests from different qubes this close
 * together cannot be told apart by a press, so neither is approved.
 */
export const CONFLICT_WINDOW_MS = 1_000;

/** The prompt on screen, or the last one: who asked, when, and how it ended. */
interface Prompt {
  readonly client: string;
  readonly abort: AbortController;
  outcome: Decision | null;
  /** When the outcome was decided: the conflict window after an approval runs from the press. */
  decidedAt: number;
}

/** The reason a prompt is withdrawn with: not a timeout, not an input error. */
const WITHDRAWN = Symbol("withdrawn for a conflict");
export class ConfirmationManager {
  private prompt: Prompt | null = null;
  private nextId = 1;
  private readonly cooldownUntil = new Map<string, number>();
  private readonly windows = new Map<string, number>();
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly timeoutMs: number;
  private readonly cooldownMs: number;
  private readonly windowMs: number;
  private readonly resultMs: number;
  private readonly conflictWindowMs: number;
  private readonly log: Log;
  private readonly clock: () => number;
  private readonly newCode: () => string;

  constructor(private readonly o: ConfirmationOptions) {
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.cooldownMs = o.cooldownMs ?? 5_000;
    this.windowMs = o.windowMs ?? 0;
    this.resultMs = o.resultMs ?? 1_500;
    this.conflictWindowMs = o.conflictWindowMs ?? CONFLICT_WINDOW_MS;
    if (!(this.windowMs >= 0 && this.windowMs <= MAX_WINDOW_MS)) {
      throw new ConfigError(`confirmation window must be between 0 and ${MAX_WINDOW_MS / 1000} s`);
    }
    if (!(this.timeoutMs > 0)) throw new ConfigError("confirmation timeout must be positive");
    this.log = o.log ?? makeLog();
    this.clock = o.monotonicMs ?? (() => platform.monotonicMs());
    this.newCode = o.newCode ?? (() => requestCodeOf(platform.randomBytes(REQUEST_CODE_LENGTH)));
  }

  /** The digest algorithms of the grants waiting for `client` (a v1 service pre-reads for them). */
  grantDigestAlgos(client: string): string[] {
    return this.o.grants?.digestAlgos(client) ?? [];
  }

  /** True only if the user approved this one request (or its window was open). */
  async request(r: ConfirmationRequest): Promise<boolean> {
    return (await this.decide(r)).approved;
  }

  /** As request(), with the decision for the audit log. Never rejects. */
  async decide(asked: ConfirmationRequest): Promise<{ approved: boolean; decision: Decision }> {
    const code = this.newCode();
    const r: ConfirmationRequest = { ...asked, code };
    // An approver's grant involves no press, so no prompt, conflict or cooldown applies to it.
    const approver = this.o.grants ? await this.o.grants.take(r) : null;
    if (approver !== null) {
      this.log("confirm-approver", { client: r.client, operation: r.operation, approver, code });
      this.o.onEvent?.({ kind: "approved", id: this.nextId++, code, request: r });
      return { approved: true, decision: `approver:${approver}` };
    }
    const now = this.clock();
    const windowKey = `${r.client}\0${r.operation}\0${r.key}`;
    if (this.windowMs > 0 && (this.windows.get(windowKey) ?? -Infinity) > now) {
      this.log("confirm-window", { client: r.client, operation: r.operation });
      this.o.onEvent?.({ kind: "approved", id: this.nextId++, code, request: r });
      return { approved: true, decision: "window" };
    }
    if (this.conflictsWith(r.client, now)) {
      this.o.onEvent?.({ kind: "conflict", id: this.nextId++, code, request: r });
      return { approved: false, decision: "conflict" };
    }
    if (this.busy) {
      this.log("confirm-busy", { client: r.client, operation: r.operation });
      return { approved: false, decision: "busy" };
    }
    if ((this.cooldownUntil.get(r.client) ?? -Infinity) > now) {
      this.log("confirm-cooldown", { client: r.client, operation: r.operation });
      return { approved: false, decision: "cooldown" };
    }
    const abort = new AbortController();
    const prompt: Prompt = { client: r.client, abort, outcome: null, decidedAt: now };
    this.prompt = prompt;
    const id = this.nextId++;
    const announce = (kind: ConfirmationEvent["kind"]) => this.o.onEvent?.({ kind, id, code, request: r });
    this.show("waiting");
    this.log("confirm-request", {
      id,
      code,
      text: promptText(r),
      client: r.client,
      service: r.service,
      operation: r.operation,
      timeout_s: Math.round(this.timeoutMs / 1000),
    });
    announce("waiting");
    const timer = setTimeout(() => abort.abort(new Error("confirmation timed out")), this.timeoutMs);
    let decision: Decision;
    try {
      const verdict: Verdict = await this.o.input.waitForVerdict(abort.signal, r);
      decision = abort.signal.aborted ? aborted(abort) : verdict === "approve" ? "approved" : "denied";
    } catch {
      decision = abort.signal.aborted ? aborted(abort) : "error";
    } finally {
      clearTimeout(timer);
    }
    prompt.outcome = decision;
    prompt.decidedAt = this.clock();
    if (decision === "approved" || decision === "denied" || decision === "timeout" || decision === "conflict")
      announce(decision);
    if (decision === "conflict") {
      this.log("confirm-result", { id, decision });
      return { approved: false, decision }; // conflictsWith() already showed and logged it
    }
    const approved = decision === "approved";
    if (approved && this.windowMs > 0) this.windows.set(windowKey, this.clock() + this.windowMs);
    if (!approved) this.cooldownUntil.set(r.client, this.clock() + this.cooldownMs);
    this.show(approved ? "approved" : "denied");
    this.log("confirm-result", { id, decision });
    return { approved, decision };
  }

  /** True while a prompt is on screen. */
  get busy(): boolean {
    return this.prompt !== null && this.prompt.outcome === null;
  }

  /**
   * A request from `client` conflicts with the prompt on screen if another client asked for
   * it, and with the last prompt if that one was approved less than the conflict window ago.
   * A conflict withdraws the prompt on screen; the caller refuses the new request.
   */
  private conflictsWith(client: string, now: number): boolean {
    const p = this.prompt;
    if (p === null || p.client === client) return false;
    const onScreen = p.outcome === null;
    const recentApproval = p.outcome === "approved" && now - p.decidedAt < this.conflictWindowMs;
    if (!onScreen && !recentApproval) return false;
    this.log("confirm-conflict", { client, other: p.client, withdrawn: onScreen });
    if (onScreen) p.abort.abort(WITHDRAWN);
    this.show("conflict");
    return true;
  }

  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private show(p: "waiting" | "approved" | "denied" | "conflict"): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.o.indicator.show(p);
    if (p === "waiting") return;
    if (this.resultMs <= 0) this.o.indicator.show("idle");
    else {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        this.o.indicator.show("idle");
      }, this.resultMs);
    }
  }
}

function aborted(abort: AbortController): Decision {
  return abort.signal.reason === WITHDRAWN ? "conflict" : "timeout";
}

/** What a pairing prompt says about the attempt limit (agent/link/code-pairing-guard.ts). */
export function pairingAttemptText(attempt: number | undefined): string {
  const lock = `code pairing locks for ${PAIR_CODE_LOCK_MS / 60_000} minutes after ${PAIR_CODE_MAX_FAILURES} failed attempts`;
  return attempt === undefined ? ` (${lock})` : ` (attempt ${attempt} of ${PAIR_CODE_MAX_FAILURES}; ${lock})`;
}

/** The one line the device's console shows for a request, after its request code if it has one. */
export function promptText(r: ConfirmationRequest): string {
  return r.code === undefined ? requestText(r) : `[${r.code}] ${requestText(r)}`;
}

function requestText(r: ConfirmationRequest): string {
  if (r.pairing)
    return `host ${r.client} asks to pair; the code is ${r.pairing.code}${pairingAttemptText(r.pairing.attempt)}`;
  if (r.argument !== undefined) return `${r.client} asks to call ${r.service}+${r.argument}`;
  const digest =
    r.digestPrefix !== undefined && r.digestSuffix !== undefined
      ? ` ${r.hashAlgo ?? "digest"} ${r.digestPrefix}…${r.digestSuffix}`
      : "";
  return `${r.client} asks for ${r.operation} (${r.service}) with ${r.key}${digest}`;
}
