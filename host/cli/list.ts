/** `qubes-air list`: the remote qubes with their real link state (dom0 always says "Running"). */
import { EXIT } from "../../core/cli/exit-codes.ts";
import { formatPublicKey } from "../../core/session/key-text.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import { describeTransport, loadRegistry } from "../daemon/registry.ts";
import { DaemonUnreachable, request } from "./client.ts";
import { COMMON_HELP, type Command, parse, pathsOf, UsageError } from "./common.ts";

export interface RemoteRow {
  name: string;
  zone: string;
  transport: string;
  state: string;
  rttMs: number | null;
  agentVersion: string | null;
  lastSeen: string | null;
  pairedAt: string;
  agentKey: string;
  /** Prompts on this device waiting for a press, as its announcements said. */
  prompts: PromptRow[];
}

export interface PromptRow {
  code: string;
  client: string;
  service: string;
  operation: string;
  key: string;
  detail: string;
  since: string;
}

export const listCommand: Command = {
  name: "list",
  summary: "list the remote qubes: link state, round-trip time, agent version, last seen",
  help: `Usage: qubes-air list [--json]

One line per paired remote qube. STATE is up, connecting, or down: <reason> (for example
ECONNREFUSED, absent = the USB device is not plugged in, no-daemon = the daemon is not running).
RTT is the last keepalive round trip. Below the table, each prompt a device shows and waits
for a press on: its request code (the device shows the same), the calling qube, what it asks.

Options:
  --json    machine-readable: an array of objects
${COMMON_HELP}

Examples:
  qubes-air list
  qubes-air list --json | jq -r '.[] | select(.state == "up") | .name'`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, { json: { type: "boolean" } });
    if (positionals.length > 0) throw new UsageError("list takes no arguments");
    const paths = pathsOf(ctx, values);
    let rows: RemoteRow[];
    try {
      const answer = await request(paths.socket, { op: "list" });
      const prompts = Array.isArray(answer.prompts) ? (answer.prompts as CborMap[]) : [];
      rows = (answer.remotes as CborMap[]).map((v) => rowOf(v, prompts));
    } catch (e) {
      if (!(e instanceof DaemonUnreachable)) throw e;
      rows = (await loadRegistry(paths.registry)).remotes.map((r) => ({
        name: r.name,
        zone: r.zone,
        transport: describeTransport(r.transport),
        state: "down: no-daemon",
        rttMs: null,
        agentVersion: null,
        lastSeen: r.lastSeen,
        pairedAt: r.pairedAt,
        agentKey: formatPublicKey(r.agentKey),
        prompts: [],
      }));
    }
    if (values.json) ctx.out(`${JSON.stringify(rows, null, 2)}\n`);
    else ctx.out(formatTable(rows, Date.now()));
    return EXIT.OK;
  },
};

function rowOf(v: CborMap, prompts: CborMap[]): RemoteRow {
  const s = (x: unknown) => (typeof x === "string" ? x : null);
  return {
    prompts: prompts
      .filter((p) => p.remote === v.name)
      .map((p) => ({
        code: String(p.code),
        client: String(p.client),
        service: String(p.service),
        operation: String(p.operation),
        key: String(p.key),
        detail: String(p.detail),
        since: new Date(Number(p.since)).toISOString(),
      })),
    name: String(v.name),
    zone: String(v.zone),
    transport: String(v.transport),
    state: String(v.state),
    rttMs: typeof v.rttUs === "number" ? v.rttUs / 1000 : null,
    agentVersion: s(v.agentVersion),
    lastSeen: typeof v.lastSeen === "number" ? new Date(v.lastSeen).toISOString() : null,
    pairedAt: String(v.pairedAt),
    agentKey: String(v.agentKey),
  };
}

export function formatTable(rows: RemoteRow[], nowMs: number): string {
  const header = ["NAME", "ZONE", "TRANSPORT", "STATE", "RTT", "AGENT", "LAST SEEN"];
  const cells = rows.map((r) => [
    r.name,
    r.zone,
    r.transport,
    r.state,
    r.rttMs === null ? "-" : r.rttMs < 10 ? `${r.rttMs.toFixed(2)} ms` : `${Math.round(r.rttMs)} ms`,
    r.agentVersion ?? "-",
    ago(r.lastSeen, nowMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    `${c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join("  ")}\n`;
  const waiting = rows.flatMap((r) =>
    r.prompts.map((p) => {
      const key = p.key && p.key !== "-" ? ` with ${p.key}` : "";
      const detail = p.detail ? ` ${p.detail}` : "";
      return `  ${r.name} [${p.code}] ${p.client} asks for ${p.operation} (${p.service})${key}${detail}, asked ${ago(p.since, nowMs) === "now" ? "just now" : ago(p.since, nowMs)}\n`;
    }),
  );
  return (
    line(header) +
    cells.map(line).join("") +
    (rows.length === 0 ? "(no remote qubes: pair one with qubes-air pair)\n" : "") +
    (waiting.length > 0 ? `\nWaiting for a press on the device:\n${waiting.join("")}` : "")
  );
}

function ago(iso: string | null, nowMs: number): string {
  if (iso === null) return "never";
  const s = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (s < 2) return "now";
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return iso.slice(0, 10);
}
