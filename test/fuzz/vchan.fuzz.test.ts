/**
 * Property and fuzz tests for the vchan multiplexer's input: decodeVchan on arbitrary records, and
 * Vchan.receive on arbitrary sequences of records interleaved with local use of the channels.
 *
 * Guarantees shown: a message or a ProtocolError, never another exception; a decoded message has
 * every field checked; an OPEN with metadata over VCHAN_MAX_CHUNK is refused; a channel nobody
 * reads never holds more than VCHAN_WINDOW_BYTES (the peer is cut off with flow-control); a
 * reader gets exactly the bytes the peer sent, in order; open channels never exceed the limit;
 * every record we send in answer is well-formed.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ProtocolError } from "../../core/errors.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import {
  decodeVchan,
  encodeVchan,
  ResetReason,
  type VchanMessage,
  VchanType,
} from "../../core/vchan/messages.ts";
import { Vchan } from "../../core/vchan/vchan.ts";
import { VCHAN_DATA_HEADER_BYTES, VCHAN_MAX_CHUNK, VCHAN_WINDOW_BYTES } from "../../core/wire/limits.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };
const TIMEOUT = 5000 + RUNS * 10;

function outcome<T>(f: () => T): { ok: T } | { code: string } {
  try {
    return { ok: f() };
  } catch (e) {
    if (e instanceof ProtocolError) return { code: e.code };
    throw e;
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A record of `length` bytes: kind VCHAN, the given type and id, the rest zero. */
function rawRecord(type: number, id: number, restLength: number): Uint8Array {
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

// --- decodeVchan ---

const anyRecordArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc
    .tuple(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.nat(),
      fc.uint8Array({ maxLength: 12 }),
    )
    .map(([kind, type, id, rest]) => {
      const r = rawRecord(type, id, rest.length);
      r[0] = kind % 3 === 0 ? kind : 1; // mostly the right kind byte
      r.set(rest, VCHAN_DATA_HEADER_BYTES);
      return r;
    }),
);

describe("decodeVchan", () => {
  test("a fully checked message or ProtocolError; accepted messages re-encode to the same bytes", () => {
    fc.assert(
      fc.property(anyRecordArb, (record) => {
        const r = outcome(() => decodeVchan(record));
        if ("code" in r) return;
        const m = r.ok;
        expect(m.id).toBe(new DataView(record.buffer, record.byteOffset).getUint32(2, false));
        if (m.type === VchanType.DATA) expect(m.data.length).toBeGreaterThan(0);
        if (m.type === VchanType.CREDIT) expect(m.bytes).toBeGreaterThan(0);
        if (m.type === VchanType.RESET) expect(Object.values(ResetReason)).toContain(m.reason);
        expect(encodeVchan(m)).toEqual(record);
      }),
      params,
    );
  });

  test("edge seeds: empty, one byte, header only for every type byte, the size limit and one over", () => {
    expect(outcome(() => decodeVchan(new Uint8Array(0)))).toEqual({ code: "frame-malformed" });
    for (let b = 0; b < 256; b++)
      expect(outcome(() => decodeVchan(Uint8Array.of(b)))).toEqual({ code: "frame-malformed" });
    expect(outcome(() => decodeVchan(rawRecord(VchanType.EOF, 0, 0).subarray(0, 5)))).toEqual({
      code: "frame-malformed",
    });
    const headerOnly: Record<number, string> = { [VchanType.OPEN]: "ok", [VchanType.EOF]: "ok" };
    for (let t = 0; t < 256; t++) {
      const r = outcome(() => decodeVchan(rawRecord(t, 7, 0)));
      expect("ok" in r ? "ok" : r.code).toBe(headerOnly[t] ?? "frame-malformed");
    }
    // Every type with a wrong kind byte.
    for (let t = 0; t < 8; t++) {
      const r = rawRecord(t, 0, 4);
      r[0] = 2;
      expect(outcome(() => decodeVchan(r))).toEqual({ code: "frame-malformed" });
    }
    expect(outcome(() => decodeVchan(rawRecord(VchanType.OPEN, 2, VCHAN_MAX_CHUNK)))).toHaveProperty("ok");
    expect(outcome(() => decodeVchan(rawRecord(VchanType.OPEN, 2, VCHAN_MAX_CHUNK + 1)))).toEqual({
      code: "frame-too-large",
    });
    // A 70 KB metadata block is refused by its length, before anything looks at it.
    expect(outcome(() => decodeVchan(rawRecord(VchanType.OPEN, 2, 70_000)))).toEqual({
      code: "frame-too-large",
    });
    expect(outcome(() => decodeVchan(rawRecord(VchanType.DATA, 2, VCHAN_MAX_CHUNK)))).toHaveProperty("ok");
    expect(outcome(() => decodeVchan(rawRecord(VchanType.DATA, 2, VCHAN_MAX_CHUNK + 1)))).toEqual({
      code: "frame-too-large",
    });
    expect(outcome(() => decodeVchan(rawRecord(VchanType.DATA, 2, 0)))).toEqual({ code: "frame-malformed" });
    for (const n of [0, 3, 5]) {
      expect(outcome(() => decodeVchan(rawRecord(VchanType.CREDIT, 2, n)))).toEqual({
        code: "frame-malformed",
      });
    }
    expect(outcome(() => decodeVchan(rawRecord(VchanType.CREDIT, 2, 4)))).toEqual({
      code: "frame-malformed",
    }); // 0
    for (let reason = 0; reason < 256; reason++) {
      const r = rawRecord(VchanType.RESET, 2, 1);
      r[VCHAN_DATA_HEADER_BYTES] = reason;
      expect("ok" in outcome(() => decodeVchan(r))).toBe(reason <= ResetReason.ERROR);
    }
    const max = rawRecord(VchanType.CREDIT, 0xffff_ffff, 4);
    max.fill(0xff, VCHAN_DATA_HEADER_BYTES);
    expect(decodeVchan(max)).toEqual({ type: VchanType.CREDIT, id: 0xffff_ffff, bytes: 0xffff_ffff });
  });
});

// --- Vchan.receive on sequences ---

type Policy = "read" | "idle" | "close" | "echo";

type Step =
  | { readonly t: "peer"; readonly m: PeerMessage }
  | { readonly t: "raw"; readonly bytes: Uint8Array }
  | { readonly t: "open" }
  | { readonly t: "write"; readonly which: number; readonly n: number }
  | { readonly t: "close-write" | "reset"; readonly which: number };

/**
 * Which channel a peer message names: mostly one that exists (so sequences get past the first
 * record), sometimes the next id the peer may open, sometimes any id at all.
 */
type IdRef = number | { readonly known: number } | "next";

type PeerMessage =
  | { readonly type: 1; readonly id: IdRef; readonly meta: number }
  | { readonly type: 2; readonly id: IdRef; readonly n: number }
  | { readonly type: 3; readonly id: IdRef }
  | { readonly type: 4; readonly id: IdRef; readonly bytes: number }
  | { readonly type: 5; readonly id: IdRef; readonly reason: number };

const idArb: fc.Arbitrary<IdRef> = fc.oneof(
  { weight: 12, arbitrary: fc.nat(7).map((known) => ({ known })) },
  { weight: 1, arbitrary: fc.constant("next" as const) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) },
  { weight: 1, arbitrary: fc.constantFrom(0xffff_fffe, 0xffff_ffff, 2 ** 31) },
);
const openIdArb: fc.Arbitrary<IdRef> = fc.oneof(
  { weight: 8, arbitrary: fc.constant("next" as const) },
  idArb,
);
const sizeArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 100 }) },
  { weight: 2, arbitrary: fc.constantFrom(VCHAN_MAX_CHUNK, 60_000, VCHAN_WINDOW_BYTES / 16) },
);
const peerArb: fc.Arbitrary<PeerMessage> = fc.oneof(
  fc.record({ type: fc.constant(1 as const), id: openIdArb, meta: fc.constantFrom(0, 5, VCHAN_MAX_CHUNK) }),
  fc.record({ type: fc.constant(2 as const), id: idArb, n: sizeArb }),
  fc.record({ type: fc.constant(3 as const), id: idArb }),
  fc.record({
    type: fc.constant(4 as const),
    id: idArb,
    bytes: fc.oneof(fc.integer({ min: 1, max: 70_000 }), fc.constantFrom(VCHAN_WINDOW_BYTES, 0xffff_ffff)),
  }),
  fc.record({ type: fc.constant(5 as const), id: idArb, reason: fc.integer({ min: 0, max: 4 }) }),
);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: peerArb.map((m) => ({ t: "peer" as const, m })) },
  { weight: 1, arbitrary: anyRecordArb.map((bytes) => ({ t: "raw" as const, bytes })) },
  { weight: 1, arbitrary: fc.constant({ t: "open" as const }) },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant("write" as const), which: fc.nat(3), n: sizeArb }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constantFrom("close-write" as const, "reset" as const), which: fc.nat(3) }),
  },
);

interface PeerChannel {
  readonly channel: Channel;
  readonly policy: Policy;
  /** DATA bytes receive() accepted for this channel (the peer's stream, in order). */
  accepted: number;
  read: Uint8Array[];
  /** Reset by the peer or closed by us: later DATA is ignored, never queued. */
  ended: boolean;
}

interface RunResult {
  /** "running", or the code of the ProtocolError that ended the vchan. */
  readonly end: string;
  readonly sent: VchanMessage[];
}

async function runVchan(
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
    if (ref === "next") return lastPeerId < 0 ? (initiator ? 1 : 0) : lastPeerId + 2;
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

/** Sequences mostly start with a few peer OPENs, so that later messages find channels. */
const stepsArb: fc.Arbitrary<Step[]> = fc
  .tuple(fc.nat(3), fc.boolean(), fc.array(stepArb, { maxLength: 16 }))
  .map(([opens, localOpen, rest]) => [
    ...Array.from({ length: opens }, (): Step => ({ t: "peer", m: { type: 1, id: "next", meta: 0 } })),
    ...(localOpen ? [{ t: "open" } as const] : []),
    ...rest,
  ]);

const policyArb = fc.array(fc.constantFrom<Policy>("read", "idle", "close", "echo"), {
  minLength: 1,
  maxLength: 4,
});

describe("Vchan.receive on arbitrary record sequences", () => {
  test(
    "returns or throws ProtocolError; bounded buffers; in-order delivery; well-formed answers",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.constantFrom(1, 2, 3, 512),
          policyArb,
          stepsArb,
          async (initiator, maxChannels, policies, steps) => {
            await runVchan(initiator, maxChannels, policies, steps);
          },
        ),
        params,
      );
    },
    TIMEOUT,
  );

  test("a peer that ignores flow control is cut off at the window, not buffered", async () => {
    // Peer opens channel 1 (we are the initiator, so the peer owns odd ids) and floods it.
    const steps: Step[] = [{ t: "peer", m: { type: 1, id: 1, meta: 0 } }];
    for (let i = 0; i < 6; i++) steps.push({ t: "peer", m: { type: 2, id: 1, n: VCHAN_MAX_CHUNK } });
    expect((await runVchan(true, 512, ["idle"], steps)).end).toBe("flow-control");
    // A reading channel takes the same flood without a fault, and grants credit as it reads.
    const reading = await runVchan(true, 512, ["read"], steps);
    expect(reading.end).toBe("running");
    expect(reading.sent.some((m) => m.type === VchanType.CREDIT && m.id === 1)).toBe(true);
  });

  test("known faults have their fixed codes", async () => {
    const cases: [Step[], string][] = [
      [[{ t: "peer", m: { type: 2, id: 1, n: 1 } }], "channel-unknown"], // never opened
      [[{ t: "peer", m: { type: 1, id: 0, meta: 0 } }], "channel-unknown"], // our id space
      [
        [
          { t: "peer", m: { type: 1, id: 3, meta: 0 } },
          { t: "peer", m: { type: 1, id: 1, meta: 0 } },
        ],
        "channel-unknown",
      ], // ids must increase
      [
        [
          { t: "peer", m: { type: 1, id: 1, meta: 0 } },
          { t: "peer", m: { type: 3, id: 1 } },
          { t: "peer", m: { type: 3, id: 1 } },
        ],
        "channel-state",
      ],
      [
        [
          { t: "peer", m: { type: 1, id: 1, meta: 0 } },
          { t: "peer", m: { type: 4, id: 1, bytes: 1 } },
        ],
        "flow-control",
      ], // credit beyond the window
      [[{ t: "raw", bytes: rawRecord(VchanType.OPEN, 1, 70_000) }], "frame-too-large"],
    ];
    for (const [steps, code] of cases) expect((await runVchan(true, 512, ["idle"], steps)).end).toBe(code);
  });

  test("a peer OPEN beyond the channel limit is answered with RESET LIMIT, not a fault", async () => {
    const steps: Step[] = [1, 3, 5].map((id) => ({ t: "peer", m: { type: 1, id, meta: 0 } }) as const);
    steps.push({ t: "peer", m: { type: 2, id: 5, n: 10 } }); // data for the refused channel is ignored
    const r = await runVchan(true, 2, ["idle"], steps);
    expect(r.end).toBe("running");
    expect(r.sent).toEqual([{ type: VchanType.RESET, id: 5, reason: ResetReason.LIMIT }]);
  });
});
