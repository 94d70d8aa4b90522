/**
 * Property tests for the device's ssh-agent decoders (core/ssh/agent-protocol.ts): on arbitrary
 * bytes, and on well-formed frames with arbitrary contents, each returns a value or throws
 * ProtocolError, never anything else; parseSignedData never throws; framing never yields a
 * message over the limit.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { ProtocolError } from "../../core/errors.ts";
import {
  AgentFramer,
  decodeIdentitiesAnswer,
  decodeRequest,
  decodeSignResponse,
  decodeStatus,
  parseSignedData,
} from "../../core/ssh/agent-protocol.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

function valueOrProtocolError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
  }
}

test("arbitrary bytes: each decoder returns a value or a ProtocolError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      valueOrProtocolError(() => decodeRequest(b));
      valueOrProtocolError(() => decodeIdentitiesAnswer(b, 64));
      valueOrProtocolError(() => decodeSignResponse(b));
      valueOrProtocolError(() => decodeStatus(b));
      const d = parseSignedData(b);
      if (d.kind === "userauth") expect(d.user).toMatch(/^[\x20-\x7e]{0,64}$/);
    }),
    { numRuns: RUNS },
  );
});

test("requests with a known type byte and arbitrary contents", () => {
  const type = fc.constantFrom(11, 13, 17, 18, 19, 22, 23, 25, 27, 0, 255);
  fc.assert(
    fc.property(type, fc.uint8Array({ maxLength: 300 }), (t, rest) => {
      const m = new Uint8Array(1 + rest.length);
      m[0] = t;
      m.set(rest, 1);
      valueOrProtocolError(() => {
        const r = decodeRequest(m);
        if (t !== 11 && t !== 13 && t !== 27) expect(r.kind).toBe("refused");
      });
    }),
    { numRuns: RUNS },
  );
});

test("framing: arbitrary chunks give messages within the limit or a ProtocolError", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
      const f = new AgentFramer(32);
      valueOrProtocolError(() => {
        for (const c of chunks) for (const m of f.push(c)) expect(m.length).toBeLessThanOrEqual(32);
      });
    }),
    { numRuns: RUNS },
  );
});
