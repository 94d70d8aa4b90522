/**
 * `qubes-air logs QUBE`: fetches the device's hash-chained audit log (the built-in service
 * qubesair.AuditLog), verifies the whole chain (core/audit/verify.ts) against the head verified
 * last time (audit-pins.ts) or a --pin, prints the records, and on a break says exactly where:
 * line and reason, exit 1. A good log moves the remembered pin to its new head.
 * Must never: print device text raw to a terminal (control characters are escaped), or pin a
 * log that did not verify.
 */
import { join } from "node:path";
import { runCall } from "../../calls/caller.ts";
import { auditOutcomes, describeOutcomes } from "../../core/audit/outcomes.ts";
import type { AuditRecord } from "../../core/audit/record.ts";
import { type BreakReason, verifyAuditLog } from "../../core/audit/verify.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { EXIT_PROBLEM, EXIT_REFUSED } from "../../core/qrexec/call-protocol.ts";
import { AUDIT_LOG_MAX_BYTES, Service } from "../../core/qrexec/services.ts";
import { formatPublicKey } from "../../core/session/key-text.ts";
import { loadRegistry } from "../daemon/registry.ts";
import { type AuditPin, loadPins, parsePinArg, savePin } from "./audit-pins.ts";
import { DaemonUnreachable, openDaemonCall } from "./client.ts";
import { COMMON_HELP, type Command, localQubeName, parse, pathsOf, qubeArg, UsageError } from "./common.ts";

/** A bigger log is refused rather than held in memory. */

export const logsCommand: Command = {
  name: "logs",
  summary: "fetch a device's audit log, verify its hash chain, print its records",
  help: `Usage: qubes-air logs [--pin SEQ:HASH] [--json] [--source NAME] QUBE

Fetches the audit log of the remote qube QUBE (every split-GPG request, confirmation and
policy ask on the device) with qubesair.AuditLog, verifies its hash chain record by record,
and prints the records. If the chain breaks, it says at which line and why, and exits 1.
It also says which approved requests have a result the device could not record when the
operation ended (written late as result-unrecorded) or no result record at all.

The head of each log that verified (sequence number and hash) is remembered in the state
dir (audit-pins.json) and checked next time, so a log that was cut short or rebuilt from the
start is caught as well. --pin checks against a head you noted yourself instead.

The device's policy must allow qubesair.AuditLog from this qube; its shipped default allows
it from "sys-remote" only.

Options:
  --pin SEQ:HASH   the record SEQ must have this hash (64 hex digits)
  --json           machine-readable: {remote, ok, records, head, break, pin, unrecorded}
  --source NAME    the caller's name the device sees (default: this qube)
${COMMON_HELP}

Exit status: 0 the log verified, 1 it is broken (or could not be read), 125 link or daemon
problem, 126 refused by the device's policy.

Examples:
  qubes-air logs pi-gpg
  qubes-air logs pi-gpg --json | jq '.records[] | select(.decision == "denied")'
  qubes-air logs pi-gpg --pin 12:3f9a0c…(64 hex digits)`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, {
      pin: { type: "string" },
      json: { type: "boolean" },
      source: { type: "string" },
    });
    if (positionals.length !== 1) throw new UsageError("give exactly one QUBE");
    const remote = qubeArg(positionals[0], "QUBE");
    const source =
      values.source === undefined ? localQubeName() : qubeArg(values.source as string, "--source");
    const explicit = values.pin === undefined ? null : parsePinArg(values.pin as string);
    if (values.pin !== undefined && !explicit)
      throw new UsageError("--pin must be SEQ:HASH (a number ≥ 1, 64 hex digits)");
    const paths = pathsOf(ctx, values);
    const pinsPath = join(paths.stateDir, "audit-pins.json");
    const pinnedKey = (await loadRegistry(paths.registry).catch(() => ({ remotes: [] }))).remotes.find(
      (r) => r.name === remote,
    )?.agentKey;
    const agentKey = pinnedKey ? formatPublicKey(pinnedKey) : null;
    const remembered = (await loadPins(pinsPath))[remote];
    const pin: AuditPin | null = explicit
      ? { ...explicit, agentKey, verifiedAt: "--pin" }
      : remembered && remembered.agentKey === agentKey
        ? remembered
        : null;

    const fetched = await fetchLog(paths.socket, remote, source);
    if (fetched.kind === "failed") {
      ctx.err(fetched.message);
      return fetched.status;
    }
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(fetched.bytes);
    } catch {
      ctx.err(`qubes-air logs: the audit log of ${remote} is not UTF-8 text: it is broken\n`);
      return EXIT.FAILURE;
    }
    const result = verifyAuditLog(text, pin ?? undefined);
    const head =
      result.ok && result.records.length > 0 ? { seq: result.records.length, hash: result.head } : null;
    // Requests whose result the device could not write in time, or at all.
    const outcomes = auditOutcomes(result.records);
    if (values.json) {
      const broken = result.ok
        ? null
        : { line: result.line, reason: result.reason, message: explain(result.reason, result.line, pin) };
      const unrecorded = result.ok ? { late: outcomes.late, open: outcomes.open } : null;
      ctx.out(
        `${JSON.stringify({ remote, ok: result.ok, records: result.records, head, break: broken, pin, unrecorded }, null, 2)}\n`,
      );
    } else {
      ctx.out(formatRecords(result.records));
      if (result.ok) ctx.out(describeOutcomes(outcomes));
    }
    if (!result.ok) {
      ctx.err(
        `qubes-air logs: the audit log of ${remote} is BROKEN at line ${result.line}: ` +
          `${result.reason}: ${explain(result.reason, result.line, pin)} ` +
          `(${result.records.length} records before it verified)\n`,
      );
      return EXIT.FAILURE;
    }
    if (head) await savePin(pinsPath, remote, { ...head, agentKey, verifiedAt: new Date().toISOString() });
    if (!values.json) {
      ctx.out(
        head
          ? `audit log OK: ${head.seq} records, head ${head.seq}:${head.hash}${pin ? ` (checked against ${pin.seq}:${pin.hash.slice(0, 12)}…)` : ""}\n`
          : "audit log OK: no records yet\n",
      );
    }
    return EXIT.OK;
  },
};

type Fetched = { kind: "ok"; bytes: Uint8Array } | { kind: "failed"; status: number; message: string };

async function fetchLog(socket: string, remote: string, source: string): Promise<Fetched> {
  let channel: Awaited<ReturnType<typeof openDaemonCall>>;
  try {
    channel = await openDaemonCall(socket, { remote, source, service: Service.AuditLog, arg: "" });
  } catch (e) {
    if (!(e instanceof DaemonUnreachable)) throw e;
    return { kind: "failed", status: EXIT_PROBLEM, message: `qubes-air: ${e.message}\n` };
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  let stderr = "";
  const result = await runCall(
    channel,
    {
      stdin: null,
      stdout: {
        write: async (d) => {
          size += d.length;
          if (size > AUDIT_LOG_MAX_BYTES) throw new Error("too big");
          parts.push(d.slice());
        },
      },
      stderr: {
        write: async (d) => {
          if (stderr.length < 4096) stderr += new TextDecoder().decode(d);
        },
      },
    },
    { refusedMessage: false },
  );
  const said = stderr === "" ? "" : escapeText(stderr.trimEnd());
  if (result.broken)
    return {
      kind: "failed",
      status: EXIT_PROBLEM,
      message: `qubes-air: the link to ${remote} broke while the log was fetched\n`,
    };
  if (result.status === EXIT_REFUSED) {
    return {
      kind: "failed",
      status: EXIT_REFUSED,
      message:
        `qubes-air logs: ${remote} refused ${Service.AuditLog} from "${source}". Allow it in the device's policy, ` +
        `e.g. /etc/qubes-air/policy.d/30-user.policy:\n  ${Service.AuditLog}  *  ${source}  @anyvm  allow\n`,
    };
  }
  if (result.status !== 0) {
    return {
      kind: "failed",
      status: 1,
      message: `qubes-air logs: ${remote} could not send its audit log (exit ${result.status})${said ? `: ${said}` : ""}\n`,
    };
  }
  if (size > AUDIT_LOG_MAX_BYTES)
    return {
      kind: "failed",
      status: 1,
      message: `qubes-air logs: the audit log of ${remote} is over 256 MiB\n`,
    };
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  return { kind: "ok", bytes };
}

function explain(reason: BreakReason, line: number, pin: AuditPin | null): string {
  switch (reason) {
    case "malformed":
      return "the line is not a well-formed audit record";
    case "bad-seq":
      return "its sequence number does not follow the line before";
    case "bad-prev":
      return "it does not chain to the line before (a line was removed or inserted)";
    case "bad-hash":
      return "its hash does not match its content (the line was changed)";
    case "truncated":
      return "the last line is incomplete";
    case "pin-mismatch":
      return `record ${pin?.seq} differs from the one verified before (${pin?.verifiedAt}): the log was rewritten`;
    case "pin-missing":
      return `the log ends at line ${line - 1}, before record ${pin?.seq} verified before (${pin?.verifiedAt}): it was cut short or rebuilt`;
  }
}

/** Control characters (C0, DEL, C1) and bidi controls as \\u escapes, so device text cannot drive the terminal. */
export function escapeText(s: string): string {
  return s.replace(
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

export function formatRecords(records: readonly AuditRecord[]): string {
  const header = ["SEQ", "TIME", "CLIENT", "SERVICE", "OPERATION", "DECISION", "RESULT", "KEY / DETAIL"];
  const rows = records.map((r) =>
    [
      String(r.seq),
      r.time.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      r.client || "-",
      r.service,
      r.operation,
      r.decision,
      r.result,
      [r.key, r.detail].filter(Boolean).join("  ") || "-",
    ].map(escapeText),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    `${c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join("  ")}\n`;
  return line(header) + rows.map(line).join("");
}
