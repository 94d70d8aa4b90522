/**
 * Property and fuzz tests for the vchan multiplexer's input: decodeVchan on arbitrary records, and
 * Vchan.receive on arbitrary sequences of records interleaved with local use of the channels.
 *
 * Guarantees shown: a message or a ProtocolError, never another exception; a decoded message has
 * every field checked; an OPEN with metadata over VCHAN_MAX_CHUNK is refused; a channel nobody
 * reads never holds more than VCHAN_WINDOW_BYTES (the peer is cut off with flow-control); a
 * reader gets exactly the bytes the peer sent, in order; open channels never exceed the limit;
 * every record we send in answer is well-formed (the scripted vchan and its checks are in
 * test/helpers/vchan-script.ts; the fixed cases in core/vchan/messages.test.ts and vchan.test.ts).
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { decodeVchan, encodeVchan, ResetReason, VchanType } from "../../core/vchan/messages.ts";
import { VCHAN_DATA_HEADER_BYTES, VCHAN_MAX_CHUNK, VCHAN_WINDOW_BYTES } from "../../core/wire/limits.ts";
import { outcome } from "../helpers/outcome.ts";
import {
  type IdRef,
  type PeerMessage,
  type Policy,
  rawRecord,
  runVchan,
  type Step,
} from "../helpers/vchan-script.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };
const TIMEOUT = 120_000 + RUNS * 10; // generous: a loaded CI machine must not fail a property test on time

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
});

// --- Vchan.receive on sequences ---

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
});
