/**
 * `qubes.SshAgent` on the device: split-SSH's server. The client qube's ssh and ssh-add talk the
 * ssh-agent protocol through qrexec (socat on the client's SSH_AUTH_SOCK, one call per
 * connection); this filter (core/ssh/agent-protocol.ts) lets through exactly:
 *
 *   REQUEST_IDENTITIES              the device's keys, as its own ssh-agent lists them
 *   SIGN_REQUEST                    one signature, after a physical confirmation (the device's
 *                                   key, the kind of signature and the data's SHA-256 on the
 *                                   prompt), with its request record in the audit log first
 *   session-bind@openssh.com        forwarded (the device's ssh-agent checks the host's
 *                                   signature); the host key it names is logged with the
 *                                   signatures for that session
 *
 * and answers everything else (add, remove, remove all, lock, unlock, smartcard, any other
 * extension) with SSH_AGENT_FAILURE, logged, the first per connection in the audit log. What a
 * userauth signature is for (user, service, host key) is logged and audited as the client sent
 * it, reduced to printable ASCII; the prompt shows only what the device knows itself.
 * Must never: forward a message it did not decode and re-encode, sign without a confirmation
 * and an audit record, or show client text on the prompt.
 */
import { createHash } from "node:crypto";
import { equalBytes } from "../../../core/bytes.ts";
import { ProtocolError } from "../../../core/errors.ts";
import { Service, SSH_AGENT_LIMITS } from "../../../core/qrexec/services.ts";
import {
  AgentFramer,
  type AgentRequest,
  decodeIdentitiesAnswer,
  decodeRequest,
  decodeSignResponse,
  decodeStatus,
  encodeIdentitiesAnswer,
  encodeRequestIdentities,
  encodeSessionBind,
  encodeSignRequest,
  encodeSignResponse,
  FAILURE_MESSAGE,
  fingerprintOf,
  type Identity,
  keyTypeOf,
  parseSignedData,
  SUCCESS_MESSAGE,
  wantsSha1Signature,
} from "../../../core/ssh/agent-protocol.ts";
import { platform } from "../../../platform/index.ts";
import type { ByteStream } from "../../../transport/transport.ts";
import type { ConfirmationManager } from "../../confirmation/manager.ts";
import { type Log, makeLog } from "../../log.ts";
import type { AuditWriter } from "../audit/log.ts";
import { recordRequest, recordResult } from "../audit/operation.ts";
import type { GpgServiceIo } from "../gpg/gpg2-service.ts";
import type { DeviceSshAgent } from "./device-agent.ts";

export interface SshAgentContext {
  /** The calling qube (the call's validated source), never a name from the payload. */
  readonly source: string;
  readonly device: Pick<DeviceSshAgent, "ready">;
  readonly confirm: ConfirmationManager;
  readonly audit: AuditWriter;
  readonly log?: Log;
  readonly limits?: typeof SSH_AGENT_LIMITS;
}

/** Session binds remembered per connection: OpenSSH binds once per hop. */
const MAX_BINDS = 16;

/** Serves one connection; resolves with the exit status (0 at the client's EOF, 1 otherwise). */
export async function serveSshAgent(io: GpgServiceIo, ctx: SshAgentContext): Promise<number> {
  const log = ctx.log ?? makeLog();
  const limits = ctx.limits ?? SSH_AGENT_LIMITS;
  const framer = new AgentFramer(limits.maxMessageBytes);
  const s = new Session(ctx, log, limits);
  try {
    for (let c = await io.stdin.read(); c !== null; c = await io.stdin.read()) {
      for (const message of framer.push(c)) {
        const reply = await s.handle(decodeRequest(message));
        if (reply === null) return 1;
        await io.stdout.write(reply);
      }
    }
    return framer.partial ? 1 : 0;
  } catch (e) {
    if (e instanceof ProtocolError) log("ssh-agent-protocol", { client: ctx.source, code: e.code });
    else if (e instanceof DeviceAgentUnavailable) {
      log("ssh-agent-unavailable", { client: ctx.source });
      await io.stderr
        .write(new TextEncoder().encode("qubes-air: the device's ssh-agent is not available\n"))
        .catch(() => {});
    } else log("ssh-agent-connection-error", { client: ctx.source, error: (e as Error).name });
    return 1;
  } finally {
    s.close();
    await io.stdout.closeWrite().catch(() => {});
  }
}

class DeviceAgentUnavailable extends Error {
  override readonly name = "DeviceAgentUnavailable";
}

class Session {
  private upstream: { stream: ByteStream; framer: AgentFramer; queue: Uint8Array[] } | null = null;
  private identities: Identity[] | null = null;
  private readonly binds: { sessionId: Uint8Array; host: string }[] = [];
  private refusals = 0;
  /**
   * The client's ssh bound this connection as a forwarded agent (a verified session-bind with
   * is_forwarding): its requests come from the host the agent was forwarded to, not from the
   * client qube's own ssh. The prompt says so (red team S6).
   */
  private forwarded = false;

  constructor(
    private readonly ctx: SshAgentContext,
    private readonly log: Log,
    private readonly limits: typeof SSH_AGENT_LIMITS,
  ) {}

  /** The reply to one request, or null when the connection must end. */
  async handle(r: AgentRequest): Promise<Uint8Array | null> {
    switch (r.kind) {
      case "identities": {
        const first = this.identities === null;
        const ids = await this.listIdentities();
        // Once per connection: a client repeating the request cannot flood the journal (S8).
        if (first) this.log("ssh-identities", { client: this.ctx.source, keys: ids.length });
        return encodeIdentitiesAnswer(ids);
      }
      case "sign":
        return this.sign(r);
      case "session-bind": {
        const ok = decodeStatus(await this.ask(encodeSessionBind(r)));
        const host = `${keyTypeOf(r.hostKey)} ${fingerprintOf(r.hostKey)}`;
        this.log("ssh-session-bind", {
          client: this.ctx.source,
          host,
          accepted: ok,
          forwarding: r.forwarding,
        });
        if (ok && this.binds.length < MAX_BINDS) this.binds.push({ sessionId: r.sessionId, host });
        if (ok && r.forwarding) this.forwarded = true;
        // A bind the device's agent refused counts as a refusal: a stock client sends one per
        // connection, and each costs the device a signature check (red team S7).
        return ok ? SUCCESS_MESSAGE : this.refuse("session-bind-refused");
      }
      case "refused":
        this.log("ssh-agent-refused", { client: this.ctx.source, request: r.what });
        return this.refuse(r.what);
    }
  }

  /** FAILURE for a refused request (the first per connection audited), or null after too many. */
  private async refuse(what: string): Promise<Uint8Array | null> {
    this.refusals++;
    if (this.refusals === 1) await this.auditRefused(what);
    return this.refusals > this.limits.maxRefusals ? null : FAILURE_MESSAGE;
  }

  close(): void {
    this.upstream?.stream.close();
    this.upstream = null;
  }

  private async sign(r: Extract<AgentRequest, { kind: "sign" }>): Promise<Uint8Array | null> {
    const ids = this.identities ?? (await this.listIdentities());
    const id = ids.find((i) => equalBytes(i.keyBlob, r.keyBlob));
    if (!id) {
      // Not a key of this device: nothing to confirm, the device's agent could not sign anyway.
      // It counts as a refusal: a stock client asks only for keys the device listed.
      this.log("ssh-sign-unknown-key", { client: this.ctx.source });
      return this.refuse("sign-unknown-key");
    }
    if (wantsSha1Signature(id.keyBlob, r.flags)) {
      // Never a press for a SHA-1 signature: the prompt's SHA-256 would not be what is signed.
      this.log("ssh-sign-sha1-refused", { client: this.ctx.source });
      return this.refuse("sign-rsa-sha1");
    }
    const key = `${keyTypeOf(id.keyBlob)} ${fingerprintOf(id.keyBlob)}${id.comment ? ` ${id.comment}` : ""}`;
    const signed = parseSignedData(r.data);
    let operation: string;
    let what: string;
    if (signed.kind === "userauth") {
      operation = "ssh-auth";
      // The host key: from session-bind for this session (checked by the device's ssh-agent), else
      // as the hostbound userauth request names it, else unknown.
      const bound = this.binds.find((b) => equalBytes(b.sessionId, signed.sessionId))?.host;
      const named = signed.hostKey ? `${keyTypeOf(signed.hostKey)} ${fingerprintOf(signed.hostKey)}` : null;
      const host = bound ?? (named ? `${named} (unbound)` : "unknown");
      what = `user=${signed.user} service=${signed.service} host=${host}`;
    } else if (signed.kind === "sshsig") {
      operation = "ssh-sig";
      what = `namespace=${signed.namespace}`;
    } else {
      operation = "ssh-sign";
      what = "";
    }
    if (this.forwarded) operation = `${operation}-forwarded`;
    const digest = createHash("sha256").update(r.data).digest("hex");
    const detail = `${what ? `${what} ` : ""}sha256 ${digest.slice(0, 8)}…${digest.slice(-8)}`;
    const d = await this.ctx.confirm.decide({
      client: this.ctx.source,
      service: Service.SshAgent,
      operation,
      key,
      hashAlgo: "sha256",
      digestPrefix: digest.slice(0, 8),
      digestSuffix: digest.slice(-8),
    });
    this.log("ssh-sign", {
      client: this.ctx.source,
      operation,
      key: fingerprintOf(id.keyBlob),
      detail,
      decision: d.decision,
    });
    const entry = {
      client: this.ctx.source,
      service: Service.SshAgent,
      operation,
      key,
      decision: d.decision,
      detail,
    };
    if (!d.approved) {
      await this.ctx.audit
        .append({ ...entry, result: "refused" })
        .catch(() => this.log("audit-append-failed", { service: Service.SshAgent }));
      return FAILURE_MESSAGE;
    }
    // The request record is on disk before the signature is made, or nothing is signed.
    const audited = await recordRequest(this.ctx.audit, entry, this.log);
    if (!audited) return FAILURE_MESSAGE;
    let signature: Uint8Array | null;
    try {
      signature = decodeSignResponse(await this.ask(encodeSignRequest(r.keyBlob, r.data, r.flags)));
    } catch (e) {
      await recordResult(this.ctx.audit, audited, "error", detail, this.log);
      throw e;
    }
    await recordResult(this.ctx.audit, audited, signature ? "ok" : "error", detail, this.log);
    return signature ? encodeSignResponse(signature) : FAILURE_MESSAGE;
  }

  private async listIdentities(): Promise<Identity[]> {
    const ids = decodeIdentitiesAnswer(await this.ask(encodeRequestIdentities()), this.limits.maxIdentities);
    this.identities = ids;
    return ids;
  }

  private async auditRefused(what: string): Promise<void> {
    await this.ctx.audit
      .append({
        client: this.ctx.source,
        service: Service.SshAgent,
        operation: what,
        key: "",
        decision: "refused",
        result: "refused",
        detail: "",
      })
      .catch(() => this.log("audit-append-failed", { service: Service.SshAgent }));
  }

  /** Sends one message to the device's ssh-agent and reads its one answer. */
  private async ask(message: Uint8Array): Promise<Uint8Array> {
    const up = await this.connect();
    await up.stream.write(message);
    for (;;) {
      const next = up.queue.shift();
      if (next) return next;
      const c = await up.stream.read();
      if (c === null) throw new ProtocolError("frame-truncated", "the device's ssh-agent closed");
      up.queue.push(...up.framer.push(c));
    }
  }

  private async connect() {
    if (this.upstream) return this.upstream;
    let stream: ByteStream;
    try {
      stream = await platform.unixConnect(await this.ctx.device.ready());
    } catch {
      throw new DeviceAgentUnavailable();
    }
    this.upstream = { stream, framer: new AgentFramer(this.limits.maxMessageBytes), queue: [] };
    return this.upstream;
  }
}
