/**
 * Unit tests of the multiplexer (vchan.ts): channel ids, the channel cap, messages for ended and
 * unknown channels, the end of the session, and flow control between two multiplexers. Random
 * record sequences are in test/fuzz/vchan.fuzz.test.ts (same scripted vchan as the fixed cases
 * at the end of this file).
 */
import { describe, expect, test } from "bun:test";
import { rawRecord, runVchan, type Step } from "../../test/helpers/vchan-script.ts";
import { ProtocolError } from "../errors.ts";
import { VCHAN_MAX_CHUNK, VCHAN_WINDOW_BYTES } from "../wire/limits.ts";
import type { Channel } from "./channel.ts";
import { decodeVchan, encodeVchan, ResetReason, type VchanMessage, VchanType } from "./messages.ts";
import { Vchan, type VchanOptions } from "./vchan.ts";

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A multiplexer whose sent records are kept, decoded. */
function recording(o: Partial<VchanOptions> = {}): [Vchan, VchanMessage[], Channel[]] {
  const sent: VchanMessage[] = [];
  const opened: Channel[] = [];
  const vchan = new Vchan({
    initiator: true,
    send: async (record) => void sent.push(decodeVchan(record)),
    onOpen: (channel) => void opened.push(channel),
    ...o,
  });
  return [vchan, sent, opened];
}

/** Two multiplexers back to back; records cross on a later task, as over a real link. */
function connected(onOpen: (channel: Channel) => void): {
  host: Vchan;
  agent: Vchan;
  bytesToAgent: () => number;
} {
  let bytes = 0;
  const deliver = (to: () => Vchan, record: Uint8Array) =>
    new Promise<void>((resolve) =>
      setImmediate(() => {
        to().receive(record);
        resolve();
      }),
    );
  const host: Vchan = new Vchan({
    initiator: true,
    send: (record) => {
      const m = decodeVchan(record);
      if (m.type === VchanType.DATA) bytes += m.data.length;
      return deliver(() => agent, record);
    },
    onOpen: () => {},
  });
  const agent: Vchan = new Vchan({ initiator: false, send: (r) => deliver(() => host, r), onOpen });
  return { host, agent, bytesToAgent: () => bytes };
}

describe("Vchan", () => {
  test("the initiator opens even ids and the responder odd ones, each strictly increasing", () => {
    const [i, sent] = recording();
    const [r] = recording({ initiator: false });
    expect([
      i.open(new Uint8Array(0)).id,
      i.open(new Uint8Array(0)).id,
      i.open(new Uint8Array(0)).id,
    ]).toEqual([0, 2, 4]);
    expect([r.open(new Uint8Array(0)).id, r.open(new Uint8Array(0)).id]).toEqual([1, 3]);
    expect(sent.map((m) => m.type)).toEqual([VchanType.OPEN, VchanType.OPEN, VchanType.OPEN]);
  });

  test("a local open beyond the cap is channel-limit; a channel that ends frees its slot", async () => {
    const [v] = recording({ maxChannels: 2 });
    const a = v.open(new Uint8Array(0));
    v.open(new Uint8Array(0));
    expect(() => v.open(new Uint8Array(0))).toThrow(expect.objectContaining({ code: "channel-limit" }));
    a.close();
    await a.closed;
    expect(v.openChannels).toBe(1);
    expect(v.open(new Uint8Array(0)).id).toBe(4);
  });

  test("a message for a channel that ended is ignored (it crossed our reset); DATA to ids never opened is a fault", async () => {
    const [v] = recording();
    const ch = v.open(new Uint8Array(0));
    ch.reset(ResetReason.CANCELLED);
    expect(() =>
      v.receive(encodeVchan({ type: VchanType.DATA, id: 0, data: Uint8Array.of(1) })),
    ).not.toThrow();
    expect(() => v.receive(encodeVchan({ type: VchanType.EOF, id: 2 }))).toThrow(
      expect.objectContaining({ code: "channel-unknown" }),
    );
  });

  test("the end of the session fails every channel with its error and refuses new ones", async () => {
    const [v] = recording();
    const ch = v.open(new Uint8Array(0));
    const reading = ch.read().catch((e: unknown) => e);
    const error = new ProtocolError("link-lost");
    v.end(error);
    expect(await reading).toBe(error);
    expect(v.openChannels).toBe(0);
    expect(() => v.open(new Uint8Array(0))).toThrow(error);
  });

  test("DATA records are cut to the maxChunk option, and never above VCHAN_MAX_CHUNK", async () => {
    const [small, sent] = recording({ maxChunk: 100 });
    await small.open(new Uint8Array(0)).write(new Uint8Array(250));
    expect(sent.flatMap((m) => (m.type === VchanType.DATA ? [m.data.length] : []))).toEqual([100, 100, 50]);
    const [big, sentBig] = recording({ maxChunk: 1 << 20 });
    await big.open(new Uint8Array(0)).write(new Uint8Array(VCHAN_MAX_CHUNK + 1));
    expect(sentBig.flatMap((m) => (m.type === VchanType.DATA ? [m.data.length] : []))).toEqual([
      VCHAN_MAX_CHUNK,
      1,
    ]);
  });

  test("a slow reader never makes the sender buffer without bound: the writer waits at one window", async () => {
    let agentSide: Channel | null = null;
    const { host, bytesToAgent } = connected((ch) => {
      agentSide = ch;
    });
    const data = Uint8Array.from({ length: 4 * VCHAN_WINDOW_BYTES }, (_, i) => i * 7);
    let written = false;
    const writing = host
      .open(new Uint8Array(0))
      .write(data)
      .then(() => {
        written = true;
      });
    for (let n = 0; n < 50; n++) await flush();
    expect(bytesToAgent()).toBe(VCHAN_WINDOW_BYTES);
    expect(written).toBe(false);
    // The reader catches up: the writer goes on, and every byte arrives in order.
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < data.length) {
      const chunk = (await agentSide!.read())!;
      parts.push(chunk);
      got += chunk.length;
    }
    await writing;
    expect(Buffer.concat(parts).equals(Buffer.from(data))).toBe(true);
  });
});

// --- Fixed cases on the scripted vchan of the fuzz test (test/helpers/vchan-script.ts) ---

describe("scripted vchan", () => {
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

  test("a peer OPEN at the top of the id space beyond the limit is refused, and channel 0 still reads in order", async () => {
    // Found by `bun run fuzz`: the script's "next" id after 0xfffffffe is 0 on the wire (u32).
    const steps: Step[] = [
      { t: "peer", m: { type: 1, id: "next", meta: 0 } },
      { t: "peer", m: { type: 1, id: 0xffff_fffe, meta: 0 } },
      { t: "peer", m: { type: 2, id: "next", n: VCHAN_MAX_CHUNK } },
    ];
    const r = await runVchan(false, 1, ["read"], steps);
    expect(r.end).toBe("running");
    expect(r.sent).toEqual([{ type: VchanType.RESET, id: 0xffff_fffe, reason: ResetReason.LIMIT }]);
  });
});
