/**
 * Property tests for the qrexec call protocol over a channel (core/qrexec/call-protocol.ts): the
 * call request in the OPEN metadata and the callee's output stream both come from the peer.
 * Guarantees shown: decodeCallRequest gives a request whose every name passes qrexec's rules, or
 * a ProtocolError; what it accepts is the canonical encoding of what it returns. OutputReader
 * gives events or a ProtocolError, the same however the bytes are split; no data after a
 * stream's EOF, no EXIT before both EOFs, nothing after EXIT, no payload over MAX_OUTPUT_CHUNK;
 * a well-formed stream decodes to exactly what was encoded. parseServiceCall (the relay's
 * SERVICE+ARG) gives valid names or a ProtocolError, and round-trips through fullServiceName.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { concatBytes, equalBytes } from "../../core/bytes.ts";
import { ProtocolError } from "../../core/errors.ts";
import {
  type CallRequest,
  decodeCallRequest,
  encodeCallRequest,
  encodeExit,
  encodeOutput,
  MAX_OUTPUT_CHUNK,
  type OutputEvent,
  OutputReader,
  OutputType,
} from "../../core/qrexec/call-protocol.ts";
import {
  fullServiceName,
  isArgument,
  isCallTarget,
  isQubeName,
  isServiceName,
  parseServiceCall,
  SERVICE_AND_ARG_MAX,
} from "../../core/qrexec/names.ts";
import { type CborValue, encodeCbor } from "../../core/wire/cbor.ts";
import { splitAt } from "../helpers/chunks.ts";
import { outcome } from "../helpers/outcome.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };
const TIMEOUT = 120_000 + RUNS * 10; // generous: a loaded CI machine must not fail a property test on time

// --- decodeCallRequest ---

const nameArb = fc.oneof(
  fc.constantFrom(
    "work",
    "pi-gpg",
    "dom0",
    "@default",
    "$default",
    "@dispvm:dvm",
    "@dispvm:",
    "@adminvm",
    "qubes.Gpg2",
    "a+b",
    "",
    "none",
    "x-dm",
    "a".repeat(31),
    "a".repeat(32),
    "a/b",
    "a b",
    "a\0b",
    "-rf",
    "+x",
  ),
  fc.stringMatching(/^[A-Za-z0-9_.+@:$-]{0,40}$/),
  fc.string({ maxLength: 12 }),
);
const requestMapArb: fc.Arbitrary<CborValue> = fc
  .record(
    {
      v: fc.oneof(fc.constant<CborValue>(1), fc.constantFrom<CborValue>(0, 2, "1", null)),
      source: nameArb,
      target: nameArb,
      service: nameArb,
      arg: nameArb,
      extra: fc.constantFrom<CborValue>(0, "x"),
    },
    { requiredKeys: [] },
  )
  .map((m) => m as CborValue);
const validRequest: CallRequest = { source: "work", target: "pi-gpg", service: "qubes.Gpg2", arg: "" };
const metaArb = fc.oneof(
  fc.uint8Array({ maxLength: 120 }),
  requestMapArb.map((m) => encodeCbor(m)),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, mask]) => {
    const b = encodeCallRequest(validRequest).slice();
    b[at % b.length]! ^= mask;
    return b;
  }),
);

describe("decodeCallRequest on arbitrary metadata", () => {
  test(
    "a request whose every name passes qrexec's rules, or ProtocolError; accepted bytes are canonical",
    () => {
      fc.assert(
        fc.property(metaArb, (meta) => {
          const r = outcome(() => decodeCallRequest(meta));
          if ("code" in r) {
            expect(r.code).toBe("schema");
            return;
          }
          expect(isQubeName(r.ok.source)).toBe(true);
          expect(isCallTarget(r.ok.target)).toBe(true);
          expect(isServiceName(r.ok.service)).toBe(true);
          expect(isArgument(r.ok.arg)).toBe(true);
          expect(equalBytes(encodeCallRequest(r.ok), meta)).toBe(true);
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

describe("parseServiceCall on arbitrary text", () => {
  test(
    "a service and an argument that pass qrexec's rules, or ProtocolError; the full name round-trips",
    () => {
      const textArb = fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.stringMatching(/^[A-Za-z0-9_.+-]{0,300}$/),
        fc.constantFrom(
          "",
          "+",
          "qubes.Gpg2+",
          "+arg",
          "a++b",
          "a".repeat(256),
          `a+${"b".repeat(SERVICE_AND_ARG_MAX)}`,
        ),
      );
      fc.assert(
        fc.property(textArb, (text) => {
          const r = outcome(() => parseServiceCall(text));
          if ("code" in r) return;
          expect(isServiceName(r.ok.service)).toBe(true);
          expect(isArgument(r.ok.arg)).toBe(true);
          expect(parseServiceCall(fullServiceName(r.ok))).toEqual(r.ok);
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

// --- OutputReader ---

/** Pushes `chunks`, collecting events until an error; data events are copied and merged per stream. */
function readAll(chunks: Uint8Array[]): { events: unknown[]; error: string | null; finished: boolean } {
  const reader = new OutputReader();
  const events: OutputEvent[] = [];
  let error: string | null = null;
  try {
    for (const c of chunks) {
      reader.push(c);
      for (let ev = reader.next(); ev; ev = reader.next()) events.push(ev);
    }
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    error = e.code;
  }
  const merged: unknown[] = [];
  for (const ev of events) {
    const prev = merged.at(-1) as { type: string; data: number[] } | undefined;
    if ((ev.type === "stdout" || ev.type === "stderr") && prev?.type === ev.type) prev.data.push(...ev.data);
    else merged.push("data" in ev ? { type: ev.type, data: [...ev.data] } : ev);
  }
  return { events: merged, error, finished: reader.finished };
}

/** Checks the order rules on a decoded event list. */
function checkOrder(events: unknown[]): void {
  const open = { stdout: true, stderr: true };
  let exited = false;
  for (const ev of events as OutputEvent[]) {
    expect(exited).toBe(false);
    if (ev.type === "stdout" || ev.type === "stderr") {
      expect(open[ev.type]).toBe(true);
      expect(ev.data.length).toBeGreaterThan(0);
    } else if (ev.type === "stdout-eof" || ev.type === "stderr-eof") {
      const stream = ev.type === "stdout-eof" ? "stdout" : "stderr";
      expect(open[stream]).toBe(true);
      open[stream] = false;
    } else if (ev.type === "exit") {
      expect(open).toEqual({ stdout: false, stderr: false });
      expect(ev.status).toBeGreaterThanOrEqual(0);
      expect(ev.status).toBeLessThanOrEqual(255);
      exited = true;
    }
  }
}

const messageArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(1, 2), fc.uint8Array({ maxLength: 20 })) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(1, 2), fc.constant(new Uint8Array(0))) },
  { weight: 1, arbitrary: fc.tuple(fc.constant(3), fc.uint8Array({ minLength: 0, maxLength: 2 })) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 4 })) },
);
const streamArb = fc.oneof(
  fc.uint8Array({ maxLength: 100 }),
  fc
    .array(messageArb, { maxLength: 8 })
    .map((ms) => concatBytes(ms.map(([type, payload]) => encodeOutput(type as OutputType, payload)))),
  // A header claiming more than one chunk, with or without the bytes behind it.
  fc
    .integer({ min: MAX_OUTPUT_CHUNK + 1, max: 0xffff_ffff })
    .map((n) => Uint8Array.of(OutputType.STDOUT, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)),
);

describe("OutputReader on arbitrary bytes", () => {
  test(
    "events in qrexec's order or ProtocolError, the same however the bytes are split",
    () => {
      fc.assert(
        fc.property(streamArb, fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
          const whole = readAll([bytes]);
          checkOrder(whole.events);
          expect(readAll(splitAt(bytes, cuts))).toEqual(whole);
          if (whole.finished) expect(whole.error).toBeNull();
        }),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "a well-formed call's output decodes to exactly what was encoded, and finishes",
    () => {
      const callArb = fc.record({
        out: fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 30 })), {
          maxLength: 6,
        }),
        stdoutFirst: fc.boolean(),
        status: fc.integer({ min: 0, max: 255 }),
      });
      fc.assert(
        fc.property(callArb, fc.array(fc.nat(), { maxLength: 6 }), ({ out, stdoutFirst, status }, cuts) => {
          const eofs = [
            encodeOutput(OutputType.STDOUT, new Uint8Array(0)),
            encodeOutput(OutputType.STDERR, new Uint8Array(0)),
          ];
          const bytes = concatBytes([
            ...out.map(([stdout, data]) =>
              encodeOutput(stdout ? OutputType.STDOUT : OutputType.STDERR, data),
            ),
            ...(stdoutFirst ? eofs : eofs.reverse()),
            encodeExit(status),
          ]);
          const r = readAll(splitAt(bytes, cuts));
          expect(r.error).toBeNull();
          expect(r.finished).toBe(true);
          expect(r.events.at(-1)).toEqual({ type: "exit", status });
          const sent = (stdout: boolean) => out.filter(([s]) => s === stdout).flatMap(([, d]) => [...d]);
          const got = (type: string) =>
            (r.events as { type: string; data?: number[] }[])
              .filter((e) => e.type === type)
              .flatMap((e) => e.data!);
          expect(got("stdout")).toEqual(sent(true));
          expect(got("stderr")).toEqual(sent(false));
        }),
        params,
      );
    },
    TIMEOUT,
  );
});
