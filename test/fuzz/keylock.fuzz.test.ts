/**
 * Property tests for the key lock's decoders: the PIN a qubesair.Unlock call carries
 * (core/keylock/pin.ts, peer bytes) returns a PIN of 4-128 characters without control characters
 * or throws ProtocolError; the sealed key file's header parser (agent/keylock/sealed.ts, bytes
 * on a card a thief may have rewritten) returns bounded scrypt parameters or throws
 * SealedFileError, never anything else and never a parameter set that would allocate more than
 * its cap.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { parseSealed, SEALED_MAGIC, SealedFileError } from "../../agent/keylock/sealed.ts";
import { ProtocolError } from "../../core/errors.ts";
import { parsePin } from "../../core/keylock/pin.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

test("PIN request: arbitrary bytes give a clean PIN or a ProtocolError", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 700 }),
        fc.string({ maxLength: 200 }).map((s) => new TextEncoder().encode(s)),
      ),
      (b) => {
        try {
          const pin = parsePin(b);
          expect([...pin].length).toBeGreaterThanOrEqual(4);
          expect([...pin].length).toBeLessThanOrEqual(128);
          expect(pin).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
        }
      },
    ),
    { numRuns: RUNS },
  );
});

test("sealed header: arbitrary headers give bounded parameters or a SealedFileError", () => {
  const value = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 40 }),
    fc.constant(null),
    fc.base64String({ maxLength: 90 }),
  );
  const header = fc.record({
    kdf: fc.oneof(fc.constant("scrypt"), value),
    N: fc.oneof(
      fc.integer({ min: 0, max: 30 }).map((e) => 2 ** e),
      value,
    ),
    r: fc.oneof(fc.integer({ min: 0, max: 40 }), value),
    p: fc.oneof(fc.integer({ min: 0, max: 20 }), value),
    salt: fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 80 }).map((b) => Buffer.from(b).toString("base64")),
      value,
    ),
    nonce: fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 16 }).map((b) => Buffer.from(b).toString("base64")),
      value,
    ),
  });
  fc.assert(
    fc.property(
      header,
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 40 }),
      (h, body, junk) => {
        for (const bytes of [
          Buffer.concat([Buffer.from(`${SEALED_MAGIC}${JSON.stringify(h)}\n`), body]),
          Buffer.concat([Buffer.from(SEALED_MAGIC), junk]),
          junk,
        ]) {
          try {
            const { header: p } = parseSealed(bytes);
            expect(p.N * p.r * 128 * 2).toBeLessThanOrEqual(256 * 1024 * 1024);
            expect(p.p).toBeLessThanOrEqual(16);
          } catch (e) {
            if (!(e instanceof SealedFileError)) throw e;
          }
        }
      },
    ),
    { numRuns: RUNS },
  );
});
