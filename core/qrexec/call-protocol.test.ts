/**
 * Unit tests of the qrexec call protocol (call-protocol.ts): the request in the OPEN metadata and
 * the callee's output messages with qrexec's ordering rules. Random input is in
 * test/fuzz/call-protocol.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { outcome } from "../../test/helpers/outcome.ts";
import { type CborValue, decodeCbor, encodeCbor } from "../wire/cbor.ts";
import {
  decodeCallRequest,
  encodeCallRequest,
  encodeExit,
  encodeOutput,
  MAX_OUTPUT_CHUNK,
  type OutputEvent,
  OutputReader,
  OutputType,
} from "./call-protocol.ts";

const request = { source: "work", target: "pi-gpg", service: "qubes.Gpg2", arg: "" };
const EMPTY = new Uint8Array(0);

/** Every event from pushing `bytes` in one piece; the error code if it threw. */
function events(...messages: Uint8Array[]): { events: OutputEvent[]; code?: string; finished: boolean } {
  const r = new OutputReader();
  const out: OutputEvent[] = [];
  const got = outcome(() => {
    for (const m of messages) {
      r.push(m);
      for (let ev = r.next(); ev; ev = r.next()) out.push(ev);
    }
  });
  return { events: out, ...("code" in got ? { code: got.code } : {}), finished: r.finished };
}

describe("call request", () => {
  test("is a strict CBOR map {v: 1, source, target, service, arg} and round-trips", () => {
    expect(decodeCbor(encodeCallRequest(request))).toEqual({ v: 1, ...request });
    expect(decodeCallRequest(encodeCallRequest(request))).toEqual(request);
    const keyword = { ...request, target: "@dispvm:dvm", arg: "a+b-c" };
    expect(decodeCallRequest(encodeCallRequest(keyword))).toEqual(keyword);
  });

  test("anything else is a schema error: other fields, another version, names outside qrexec's rules", () => {
    const bad: CborValue[] = [
      { v: 2, ...request },
      { v: 1, ...request, extra: 0 },
      { v: 1, source: "work", target: "pi-gpg", service: "qubes.Gpg2" },
      { v: 1, ...request, source: "@default" },
      { v: 1, ...request, target: "a/b" },
      { v: 1, ...request, service: "" },
      { v: 1, ...request, service: "a+b" },
      { v: 1, ...request, arg: "a b" },
      { v: 1, ...request, arg: 5 },
      [1, "work"],
      "work",
    ];
    for (const v of bad) expect(outcome(() => decodeCallRequest(encodeCbor(v)))).toEqual({ code: "schema" });
    expect(outcome(() => decodeCallRequest(Uint8Array.of(0xff)))).toEqual({ code: "schema" });
  });
});

describe("OutputReader", () => {
  test("stdout and stderr data, a zero-length message as each stream's EOF, then EXIT", () => {
    expect(encodeOutput(OutputType.STDOUT, Uint8Array.of(7))).toEqual(Uint8Array.of(1, 0, 0, 0, 1, 7));
    const r = events(
      encodeOutput(OutputType.STDOUT, Uint8Array.of(1)),
      encodeOutput(OutputType.STDERR, Uint8Array.of(2)),
      encodeOutput(OutputType.STDERR, EMPTY),
      encodeOutput(OutputType.STDOUT, EMPTY),
      encodeExit(3),
    );
    expect(r.events).toEqual([
      { type: "stdout", data: Uint8Array.of(1) },
      { type: "stderr", data: Uint8Array.of(2) },
      { type: "stderr-eof" },
      { type: "stdout-eof" },
      { type: "exit", status: 3 },
    ]);
    expect(r.code).toBeUndefined();
    expect(r.finished).toBe(true);
  });

  test("a message split anywhere waits for the rest", () => {
    const bytes = encodeOutput(OutputType.STDOUT, Uint8Array.of(1, 2, 3));
    const r = new OutputReader();
    for (const b of bytes.subarray(0, -1)) {
      r.push(Uint8Array.of(b));
      expect(r.next()).toBeUndefined();
    }
    r.push(bytes.subarray(-1));
    expect(r.next()).toEqual({ type: "stdout", data: Uint8Array.of(1, 2, 3) });
  });

  test("qrexec's order is enforced: each fault has its fixed code", () => {
    const eof = (t: OutputType) => encodeOutput(t, EMPTY);
    const cases: [Uint8Array[], string][] = [
      [[encodeExit(0)], "unexpected-message"], // exit before both outputs ended
      [[eof(OutputType.STDOUT), encodeExit(0)], "unexpected-message"],
      [[eof(OutputType.STDOUT), encodeOutput(OutputType.STDOUT, Uint8Array.of(1))], "channel-state"],
      [[eof(OutputType.STDERR), eof(OutputType.STDERR)], "channel-state"],
      [[eof(OutputType.STDOUT), eof(OutputType.STDERR), encodeExit(0), encodeExit(0)], "unexpected-message"],
      [
        [eof(OutputType.STDOUT), eof(OutputType.STDERR), encodeOutput(OutputType.EXIT, Uint8Array.of(0, 0))],
        "unexpected-message",
      ],
      [[encodeOutput(4 as OutputType, Uint8Array.of(1))], "frame-malformed"],
    ];
    for (const [messages, code] of cases) expect(events(...messages).code).toBe(code);
  });

  test("a length over MAX_OUTPUT_CHUNK is refused from the header alone, before any payload", () => {
    const header = (n: number) =>
      Uint8Array.of(OutputType.STDOUT, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
    expect(events(header(MAX_OUTPUT_CHUNK + 1)).code).toBe("frame-too-large");
    expect(events(header(0xffff_ffff)).code).toBe("frame-too-large");
    expect(events(header(MAX_OUTPUT_CHUNK)).code).toBeUndefined(); // waits for the payload
  });

  test("finished only once EXIT arrived and nothing is left over; the status is one byte", () => {
    const eofs = [encodeOutput(OutputType.STDOUT, EMPTY), encodeOutput(OutputType.STDERR, EMPTY)];
    expect(events(...eofs).finished).toBe(false);
    expect(events(...eofs, encodeExit(256 + 7)).events.at(-1)).toEqual({ type: "exit", status: 7 });
    expect(events(...eofs, encodeExit(0), Uint8Array.of(1)).finished).toBe(false);
  });
});
