/**
 * A scripted Vchan for core/vchan tests and the vchan fuzz test: the peer's records (well-formed
 * messages for channels that exist, or raw bytes) interleaved with local use of channels (open,
 * write, close the write side, reset), with a policy per peer-opened channel (read it, leave it
 * idle, close it, echo it). After the script it checks the multiplexer's guarantees: a channel
 * nobody reads never holds more than VCHAN_WINDOW_BYTES, readers get the peer's bytes in order,
 * open channels never exceed the limit, and every record we sent is well-formed and within the
 * credit the peer granted.
 * Must never: let a check pass silently (each is an expect(), failing the test that runs it).
 */
import { expect } from "bun:test";
import { ProtocolError } from "../../core/errors.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { decodeVchan, ResetReason, type VchanMessage, VchanType } from "../../core/vchan/messages.ts";
import { Vchan } from "../../core/vchan/vchan.ts";
import { VCHAN_DATA_HEADER_BYTES, VCHAN_MAX_CHUNK, VCHAN_WINDOW_BYTES } from "../../core/wire/limits.ts";
import { outcome } from "./outcome.ts";

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A record of `length` bytes: kind VCHAN, the given type and id, the rest zero. */
export function rawRecord(type: number, id: number, restLength: number): Uint8Array {
  const r = new Uint8Array(VCHAN_DATA_HEADER_BYTES + restLength);
  r[0] = 1;
  r[1] = type;
  new DataView(r.buffer).setUint32(2, id >>> 0, false);
  return r;
}

/** Payload bytes that say which channel and offset they belong to, so reordering is visible. */
function pattern(id: number, offset: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (id * 31 + offset + i) & 0xff;
  return b;
}

export type Policy = "read" | "idle" | "close" | "echo";

export type Step =
  | { readonly t: "peer"; readonly m: PeerMessage }
  | { readonly t: "raw"; readonly bytes: Uint8Array }
  | { readonly t: "open" }
  | { readonly t: "write"; readonly which: number; readonly n: number }
  | { readonly t: "close-write" | "reset"; readonly which: number };

/**
 * Which channel a peer message names: mostly one that exists (so sequences get past the first
 * record), sometimes the next id the peer may open, sometimes any id at all.
 */
export type IdRef = number | { readonly known: number } | "next";

export type PeerMessage =
  | { readonly type: 1; readonly id: IdRef; readonly meta: number }
  | { readonly type: 2; readonly id: IdRef; readonly n: number }
  | { readonly type: 3; readonly id: IdRef }
  | { readonly type: 4; readonly id: IdRef; readonly bytes: number }
  | { readonly type: 5; readonly id: IdRef; readonly reason: number };

interface PeerChannel {
  readonly channel: Channel;
  readonly policy: Policy;
  /** DATA bytes receive() accepted for this channel (the peer's stream, in order). */
  accepted: number;
  read: Uint8Array[];
  /** Reset by the peer or closed by us: later DATA is ignored, never queued. */
  ended: boolean;
}

export interface RunResult {
  /** "running", or the code of the ProtocolError that ended the vchan. */
  readonly end: string;
  readonly sent: VchanMessage[];
}

export async function runVchan(
  initiator: boolean,
  maxChannels: number,
  policies: Policy[],
  steps: Step[],
): Promise<RunResult> {
  const sent: VchanMessage[] = [];
  const peerChannels = new Map<number, PeerChannel>();
  const local: Channel[] = [];
  const vchan = new Vchan({
    initiator,
    maxChannels,
    send: async (record) => {
      sent.push(decodeVchan(record)); // throws (fails the run) if we ever send a malformed record
    },
    onOpen: (channel, meta) => {
      expect(meta.length).toBeLessThanOrEqual(VCHAN_MAX_CHUNK);
      const policy = policies[peerChannels.size % policies.length]!;
      const pc: PeerChannel = { channel, policy, accepted: 0, read: [], ended: policy === "close" };
      peerChannels.set(channel.id, pc);
      if (policy === "close") channel.close();
      if (policy === "read" || policy === "echo") {
        void (async () => {
          for (let c = await channel.read(); c; c = await channel.read()) {
            pc.read.push(c.slice());
            if (policy === "echo") await channel.write(c);
          }
        })().catch(() => {});
      }
    },
  });

  let end = "running";
  let lastPeerId = -1;
  const granted = new Map<number, number>();
  const resolveId = (ref: IdRef): number => {
    if (typeof ref === "number") return ref;
    // u32 on the wire: after 0xfffffffe, "next" wraps to 0 exactly as the record will.
    if (ref === "next") return (lastPeerId < 0 ? (initiator ? 1 : 0) : lastPeerId + 2) >>> 0;
    const ids = [...peerChannels.keys(), ...local.map((c) => c.id)];
    return ids.length ? ids[ref.known % ids.length]! : ref.known;
  };
  for (const step of steps) {
    if (step.t === "peer" || step.t === "raw") {
      const id = step.t === "peer" ? resolveId(step.m.id) : -1;
      const record = step.t === "raw" ? step.bytes : peerRecord(step.m, id, peerChannels);
      const pc = peerChannels.get(id);
      const r = outcome(() => vchan.receive(record));
      if ("code" in r) {
        vchan.end(new ProtocolError(r.code as ProtocolError["code"]));
        end = r.code;
        break;
      }
      if (step.t === "peer" && step.m.type === VchanType.OPEN) lastPeerId = Math.max(lastPeerId, id);
      if (step.t === "peer" && step.m.type === VchanType.CREDIT)
        granted.set(id, (granted.get(id) ?? 0) + step.m.bytes);
      if (pc && !pc.ended && step.t === "peer") {
        if (step.m.type === VchanType.DATA) pc.accepted += step.m.n;
        if (step.m.type === VchanType.RESET) pc.ended = true;
      }
    } else if (step.t === "open") {
      const r = outcome(() => vchan.open(new Uint8Array(2)));
      if ("ok" in r) {
        local.push(r.ok);
        r.ok.closed.catch(() => {});
      }
    } else {
      const ch = local[step.which % Math.max(1, local.length)];
      if (!ch) continue;
      if (step.t === "write") ch.write(new Uint8Array(step.n)).catch(() => {});
      else if (step.t === "close-write") ch.closeWrite().catch(() => {});
      else ch.reset(ResetReason.CANCELLED);
    }
    expect(vchan.openChannels).toBeLessThanOrEqual(maxChannels);
    await tick();
  }
  await tick();

  // Memory bound and integrity per peer channel.
  for (const [id, pc] of peerChannels) {
    if (pc.policy === "idle") expect(pc.accepted).toBeLessThanOrEqual(VCHAN_WINDOW_BYTES);
    let offset = 0;
    for (const chunk of pc.read) {
      expect(chunk).toEqual(pattern(id, offset, chunk.length));
      offset += chunk.length;
    }
    expect(offset).toBeLessThanOrEqual(pc.accepted);
  }
  // What we sent: credits never beyond what the peer's data used, DATA never beyond the credit.
  const sentData = new Map<number, number>();
  for (const m of sent) {
    if (m.type === VchanType.DATA) sentData.set(m.id, (sentData.get(m.id) ?? 0) + m.data.length);
    if (m.type === VchanType.CREDIT) expect(m.bytes).toBeLessThanOrEqual(VCHAN_WINDOW_BYTES);
  }
  for (const [id, n] of sentData) expect(n).toBeLessThanOrEqual(VCHAN_WINDOW_BYTES + (granted.get(id) ?? 0));
  return { end, sent };
}

/** The wire record for a peer message; DATA carries the channel's position pattern. */
function peerRecord(m: PeerMessage, id: number, channels: Map<number, PeerChannel>): Uint8Array {
  switch (m.type) {
    case VchanType.OPEN:
      return rawRecord(m.type, id, m.meta);
    case VchanType.DATA: {
      const r = rawRecord(m.type, id, m.n);
      r.set(pattern(id, channels.get(id)?.accepted ?? 0, m.n), VCHAN_DATA_HEADER_BYTES);
      return r;
    }
    case VchanType.EOF:
      return rawRecord(m.type, id, 0);
    case VchanType.CREDIT: {
      const r = rawRecord(m.type, id, 4);
      new DataView(r.buffer).setUint32(VCHAN_DATA_HEADER_BYTES, m.bytes, false);
      return r;
    }
    case VchanType.RESET: {
      const r = rawRecord(m.type, id, 1);
      r[VCHAN_DATA_HEADER_BYTES] = m.reason;
      return r;
    }
  }
}
