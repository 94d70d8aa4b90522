/**
 * The split-gpg2 server-side filter (reference/split-gpg.md §2) as a pure state machine. The
 * caller (agent/services/gpg/gpg2-service.ts) feeds it the client's and gpg-agent's bytes and carries out
 * the effects it returns, in order: lines to the agent, lines to the client, a confirmation to
 * ask, the result of a confirmed operation, and the end of the connection.
 *
 * Assuan is turn-based, so `awaiting` always names the one party whose input can move the
 * machine on; the caller reads only from that party (so a client's pipelined bytes stay
 * bounded by one read). Every client command is checked against split-gpg2's table, with its
 * exact argument rules; on any violation the client gets `ERR 67109888 Command filtered by
 * split-gpg2.` and the connection ends. The device writes SETKEYDESC itself from its own
 * keyring; keygrips of primary keys are refused unless `allowPrimaryKeys`.
 * Must never: forward a byte of a client line that was not re-built from checked parts, or
 * echo client bytes back in an error.
 */

import { assert } from "../errors.ts";
import {
  ASSUAN_LINELENGTH,
  binary,
  ERR_CANCELED_LINE,
  ERR_FILTERED_LINE,
  extractArgs,
  LineSplitter,
  line,
} from "./assuan.ts";
import { type CommandContext, handleCommand, handleInquireLine } from "./assuan-commands.ts";
import { keyinfoLineServed } from "./assuan-keys.ts";
import type { StatusFilter } from "./assuan-step.ts";
import type { KeyEntry } from "./keyring.ts";
import { Violation, type ViolationCode } from "./violation.ts";

export { Violation } from "./violation.ts";

/** Longest agent line we relay; gpg-agent itself writes at most ASSUAN_LINELENGTH. */
export const AGENT_LINE_MAX = 4096;

export type FilterOperation = "PKSIGN" | "PKDECRYPT";

export interface ConfirmRequest {
  readonly operation: FilterOperation;
  readonly key: KeyEntry;
  /** PKSIGN only: the algorithm number, its name and the digest as upper-case hex. */
  readonly hash?: { readonly algo: number; readonly name: string; readonly hex: string };
}

export type CloseReason =
  | "filtered"
  | "denied"
  | "unaudited"
  | "bye"
  | "client-eof"
  | "agent-eof"
  | "agent-protocol";

/**
 * Our answer to an approved operation the device could not write an audit record for
 * (GPG_ERR_NOT_OPERATIONAL, source gpg-agent): gpg says "Not operational"; nothing was forwarded.
 */
export const ERR_UNAUDITED_LINE = `ERR ${(4 << 24) | 176} Not operational <GPG Agent>`;

export type FilterEffect =
  | { readonly kind: "agent"; readonly data: Uint8Array; readonly socket: "restricted" | "unrestricted" }
  | { readonly kind: "client"; readonly data: Uint8Array }
  | { readonly kind: "confirm"; readonly request: ConfirmRequest }
  | { readonly kind: "result"; readonly request: ConfirmRequest; readonly ok: boolean }
  | {
      readonly kind: "close";
      readonly reason: CloseReason;
      /** For "filtered": our code for what was wrong, and the command if it was a known one. */
      readonly violation?: Violation;
      readonly command?: string;
    };

export type Awaiting = "client" | "agent" | "agent-unrestricted" | "confirm" | "closed";

export interface FilterOptions {
  /** The device's keyring: which key a keygrip is (undefined: not a key we serve). */
  readonly lookupKey: (keygrip: string) => KeyEntry | undefined;
  /** Every key of the device's keyring in listing order, for HAVEKEY --list (default none). */
  readonly listKeys?: () => Iterable<KeyEntry>;
  /** Serve primary keys too (certification). Default false: subkeys only. */
  readonly allowPrimaryKeys?: boolean;
}

type Phase =
  | { p: "greeting" }
  | { p: "command" }
  | { p: "response"; cmd: string; socket: "restricted" | "unrestricted"; after?: After }
  | { p: "keydesc"; heldOk: Uint8Array }
  | { p: "inquire"; name: string; seenData: boolean; cmd: string; after?: After }
  | { p: "confirm"; request: ConfirmRequest; forward: string }
  | { p: "closed" };

type After = { setKeyDesc?: string; confirmed?: ConfirmRequest; bye?: boolean; statusFilter?: StatusFilter };

export class AssuanFilter {
  private phase: Phase = { p: "greeting" };
  private readonly client = new LineSplitter(ASSUAN_LINELENGTH);
  private readonly agent = new LineSplitter(AGENT_LINE_MAX);
  private readonly ctx: CommandContext;

  constructor(opts: FilterOptions) {
    this.ctx = {
      lookupKey: opts.lookupKey,
      listKeys: opts.listKeys ?? (() => []),
      allowPrimaryKeys: opts.allowPrimaryKeys ?? false,
      key: null,
      hash: null,
    };
  }

  get awaiting(): Awaiting {
    const p = this.phase.p;
    if (p === "greeting" || p === "keydesc") return "agent";
    if (p === "response") return this.phase.socket === "unrestricted" ? "agent-unrestricted" : "agent";
    if (p === "command" || p === "inquire") return "client";
    return p === "confirm" ? "confirm" : "closed";
  }

  /** The request a `confirm` effect asked about, while awaiting its result. */
  get pendingConfirmation(): ConfirmRequest | null {
    return this.phase.p === "confirm" ? this.phase.request : null;
  }

  feedClient(chunk: Uint8Array): FilterEffect[] {
    if (this.phase.p === "closed") return [];
    this.client.push(chunk);
    return this.pump([]);
  }

  /** The client half-closed; an unfinished line is dropped, never forwarded. */
  clientEof(): FilterEffect[] {
    if (this.phase.p === "closed") return [];
    return this.close([], "client-eof");
  }

  /** Bytes from the agent (restricted or, while awaiting it, the one-off unrestricted one). */
  feedAgent(chunk: Uint8Array): FilterEffect[] {
    if (this.phase.p === "closed") return [];
    this.agent.push(chunk);
    const out: FilterEffect[] = [];
    while (this.awaiting === "agent" || this.awaiting === "agent-unrestricted") {
      const l = this.agent.next();
      if (l === "need-more") break;
      if (l === "too-long") return this.close(out, "agent-protocol");
      this.onAgentLine(l, out);
    }
    return this.pump(out);
  }

  agentEof(): FilterEffect[] {
    if (this.phase.p === "closed") return [];
    return this.close([], "agent-eof");
  }

  /** The user's verdict on the pending confirmation. */
  confirmResult(approved: boolean): FilterEffect[] {
    const ph = this.phase;
    assert(ph.p === "confirm", "confirmResult: no confirmation pending");
    const out: FilterEffect[] = [];
    if (!approved) {
      out.push({ kind: "client", data: line(ERR_CANCELED_LINE) });
      return this.close(out, "denied");
    }
    this.forward(out, ph.forward, "restricted", { confirmed: ph.request });
    return out;
  }

  /**
   * The pending confirmation was approved but its request record could not be written: the
   * client gets ERR_UNAUDITED_LINE, the held command is dropped and the connection ends.
   */
  refuseUnaudited(): FilterEffect[] {
    assert(this.phase.p === "confirm", "refuseUnaudited: no confirmation pending");
    return this.close([{ kind: "client", data: line(ERR_UNAUDITED_LINE) }], "unaudited");
  }

  /** Processes buffered client lines for as long as it is the client's turn. */
  private pump(out: FilterEffect[]): FilterEffect[] {
    while (this.awaiting === "client") {
      const l = this.client.next();
      if (l === "need-more") break;
      if (l === "too-long") return this.violate(out, "line-too-long");
      this.onClientLine(l, out);
    }
    return out;
  }

  private onClientLine(bytes: Uint8Array, out: FilterEffect[]): void {
    const ph = this.phase;
    try {
      if (ph.p === "inquire") {
        const r = handleInquireLine(bytes, ph.name, ph.seenData);
        if (r.data) ph.seenData = true;
        out.push({ kind: "agent", data: r.agentLine, socket: "restricted" });
        if (r.end) this.phase = { p: "response", cmd: ph.cmd, socket: "restricted", after: ph.after };
        return;
      }
      const step = handleCommand(binary(bytes), this.ctx);
      if (step.kind === "reply") for (const l of step.lines) out.push({ kind: "client", data: line(l) });
      else if (step.kind === "forward") {
        const { setKeyDesc, bye, statusFilter } = step;
        this.forward(out, step.line, step.socket, { setKeyDesc, bye, statusFilter });
      } else {
        this.phase = { p: "confirm", request: step.request, forward: step.line };
        out.push({ kind: "confirm", request: step.request });
      }
    } catch (e) {
      if (!(e instanceof Violation)) throw e;
      this.violate(out, e.reason, e.command);
    }
  }

  private forward(out: FilterEffect[], text: string, socket: "restricted" | "unrestricted", after: After) {
    out.push({ kind: "agent", data: line(text), socket });
    this.phase = { p: "response", cmd: extractArgs(text)[0], socket, after };
  }

  private onAgentLine(bytes: Uint8Array, out: FilterEffect[]): void {
    const ph = this.phase;
    const text = binary(bytes);
    if (text.startsWith("#")) return; // comment
    const [res, args] = extractArgs(text);
    if (ph.p === "greeting") {
      if (res !== "OK") return void this.close(out, "agent-protocol");
      out.push({ kind: "client", data: line("OK Pleased to meet you") });
      this.phase = { p: "command" };
      return;
    }
    if (ph.p === "keydesc") {
      if (text !== "OK") return void this.close(out, "agent-protocol");
      out.push({ kind: "client", data: ph.heldOk });
      this.phase = { p: "command" };
      return;
    }
    if (ph.p !== "response") return void this.close(out, "agent-protocol");
    if (res === "D" || res === "S") {
      // KEYINFO --list: the agent lists every key it holds; the client hears of served ones only.
      if (res === "S" && ph.after?.statusFilter === "served-keyinfo" && !keyinfoLineServed(text, this.ctx))
        return;
      out.push({ kind: "client", data: withLf(bytes) });
    } else if (res === "OK" || res === "ERR") {
      const ok = res === "OK";
      if (ph.after?.confirmed) out.push({ kind: "result", request: ph.after.confirmed, ok });
      if (ph.after?.bye) {
        out.push({ kind: "client", data: withLf(bytes) });
        this.close(out, "bye");
      } else if (ok && ph.after?.setKeyDesc !== undefined) {
        out.push({ kind: "agent", data: line(`SETKEYDESC ${ph.after.setKeyDesc}`), socket: "restricted" });
        this.phase = { p: "keydesc", heldOk: withLf(bytes) };
      } else {
        out.push({ kind: "client", data: withLf(bytes) });
        this.phase = { p: "command" };
      }
    } else if (res === "INQUIRE") {
      const [name, inqArgs] = extractArgs(args ?? "");
      const allowed = INQUIRES[ph.cmd] ?? [];
      if (!allowed.includes(name)) return void this.violate(out, "unexpected-inquire");
      if (name === "CIPHERTEXT" && inqArgs !== undefined && inqArgs !== "") {
        return void this.violate(out, "unexpected-inquire");
      }
      out.push({ kind: "client", data: withLf(bytes) });
      this.phase = { p: "inquire", name, seenData: false, cmd: ph.cmd, after: ph.after };
    } else {
      this.close(out, "agent-protocol");
    }
  }

  private violate(out: FilterEffect[], code: ViolationCode, command?: string): FilterEffect[] {
    out.push({ kind: "client", data: line(ERR_FILTERED_LINE) });
    return this.close(out, "filtered", new Violation(code, command));
  }

  private close(out: FilterEffect[], reason: CloseReason, violation?: Violation): FilterEffect[] {
    const ph = this.phase;
    const confirmed = ph.p === "response" || ph.p === "inquire" ? ph.after?.confirmed : undefined;
    if (confirmed) out.push({ kind: "result", request: confirmed, ok: false });
    this.phase = { p: "closed" };
    out.push({ kind: "close", reason, violation, command: violation?.command });
    return out;
  }
}

/** Which inquiries gpg-agent may send back for a command (anything else is filtered). */
const INQUIRES: Record<string, readonly string[]> = {
  PKDECRYPT: ["CIPHERTEXT", "PINENTRY_LAUNCHED"],
  PKSIGN: ["PINENTRY_LAUNCHED"],
};

function withLf(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = 10;
  return out;
}
