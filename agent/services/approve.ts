/**
 * The built-in qubesair.Approve (docs/device-policy.md "Unattended signing"): an approver qube
 * stands in for the press for one client's signatures. The call's argument names the client,
 * its stdin is one request line (core/qrexec/approve-request.ts); it runs only after the device's
 * policy allowed `qubesair.Approve+CLIENT` from the approver (the default policy denies it).
 *
 * The grant is written to the audit log first and takes effect only once it is on disk; each
 * signature it then covers is recorded by the split-GPG service with decision
 * "approver:APPROVER". Exit 0 and one line on stdout when granted; 1 and a line on stderr when
 * refused (bad request, self-approval, full digest list, audit log not writable).
 * Must never: take the approver's or the client's name from the payload, or grant before the
 * audit record is on disk.
 */
import { concatBytes } from "../../core/bytes.ts";
import { ProtocolError } from "../../core/errors.ts";
import { parseApproveRequest } from "../../core/qrexec/approve-request.ts";
import { isQubeName } from "../../core/qrexec/names.ts";
import { APPROVE_LIMITS, Service } from "../../core/qrexec/services.ts";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";
import type { ApproverGrants } from "../confirmation/approver-grants.ts";
import type { Log } from "../log.ts";
import type { AuditWriter } from "./audit/log.ts";

export interface ApproveIo {
  readonly stdin: ByteSource;
  readonly stdout: ByteSink;
  readonly stderr: ByteSink;
}

export interface ApproveContext {
  /** The calling qube as the relay reported it: the approver. */
  readonly approver: string;
  /** The call's argument: the client the grant is for. */
  readonly client: string;
  readonly grants: ApproverGrants;
  readonly audit: AuditWriter;
  readonly log: Log;
  /** How long the approver may take to send its line (default APPROVE_LIMITS.readMs). */
  readonly readMs?: number;
}

const enc = (s: string) => new TextEncoder().encode(s);

export async function serveApprove(io: ApproveIo, ctx: ApproveContext): Promise<number> {
  const fail = async (text: string) => {
    await io.stderr.write(enc(`${Service.Approve}: ${text}\n`)).catch(() => {});
    return 1;
  };
  if (!isQubeName(ctx.client)) return fail("name the client as the argument: qubesair.Approve+CLIENT");
  let request: ReturnType<typeof parseApproveRequest>;
  try {
    request = parseApproveRequest(await readLine(io.stdin, ctx.readMs ?? APPROVE_LIMITS.readMs));
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    ctx.log("approve-refused", { approver: ctx.approver, client: ctx.client, code: error.code });
    return fail(error.detail ?? "bad request");
  }
  const what =
    request.kind === "revoke"
      ? "revoke"
      : request.kind === "count"
        ? `count ${request.count} for ${request.seconds} s`
        : `digest ${request.algo} ${request.hex} for ${request.seconds} s`;
  const refused = ctx.grants.refusal(ctx.approver, ctx.client, request);
  if (refused) {
    ctx.log("approve-refused", { approver: ctx.approver, client: ctx.client, code: refused.why });
    return fail(refused.text);
  }
  try {
    await ctx.audit.append({
      client: ctx.approver,
      service: Service.Approve,
      operation: request.kind === "revoke" ? "revoke" : "grant",
      key: "",
      decision: "policy",
      result: "granted",
      detail: `for ${ctx.client}: ${what}`,
    });
  } catch {
    return fail("the device cannot write its audit log; nothing was granted");
  }
  const outcome = ctx.grants.grant(ctx.approver, ctx.client, request);
  // refusal() was asked just before; only a concurrent grant filling the digest list gets here.
  if (!outcome.ok) return fail(outcome.text);
  ctx.log("approve-granted", { approver: ctx.approver, client: ctx.client, grant: what });
  await io.stdout.write(enc(`granted: ${outcome.text}\n`)).catch(() => {});
  return 0;
}

/** The whole of stdin, at most APPROVE_LIMITS.requestMaxBytes, within `ms`. */
async function readLine(stdin: ByteSource, ms: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProtocolError("schema", "approve request: not sent in time")), ms);
  });
  try {
    for (;;) {
      const chunk = await Promise.race([stdin.read(), late]);
      if (chunk === null) break;
      size += chunk.length;
      if (size > APPROVE_LIMITS.requestMaxBytes)
        throw new ProtocolError("schema", "approve request: too long");
      chunks.push(chunk);
    }
  } finally {
    clearTimeout(timer);
  }
  return concatBytes(chunks);
}
