/**
 * Property tests for sys-remote's decoder of device announcements (core/qrexec/announcement.ts):
 * on arbitrary bytes, and on well-formed maps with arbitrary field values, it returns an
 * announcement whose text is printable ASCII, or throws ProtocolError, never anything else.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { ProtocolError } from "../../core/errors.ts";
import { decodeAnnouncement, isRequestCode } from "../../core/qrexec/announcement.ts";
import { encodeCbor } from "../../core/wire/cbor.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

function checked(bytes: Uint8Array): void {
  try {
    const a = decodeAnnouncement(bytes);
    for (const t of [a.operation, a.key, a.detail]) expect(t).toMatch(/^[\x20-\x7e]*$/);
    expect(isRequestCode(a.code)).toBe(true);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
  }
}

test("arbitrary bytes: an announcement or a ProtocolError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (b) => checked(b)),
    { numRuns: RUNS },
  );
});

test("maps with arbitrary values: printable text or a ProtocolError", () => {
  const field = fc.oneof(fc.string({ maxLength: 300 }), fc.integer(), fc.constant(null), fc.boolean());
  const map = fc.record({
    v: fc.oneof(fc.constant(2), field),
    event: fc.oneof(fc.constantFrom("waiting", "approved", "denied", "timeout", "conflict"), field),
    id: fc.oneof(fc.nat(), field),
    code: fc.oneof(fc.constantFrom("K7QD", "2222"), field),
    client: fc.oneof(fc.constantFrom("work", "vault"), field),
    service: fc.oneof(fc.constantFrom("qubes.Gpg2", "test.Ask"), field),
    operation: field,
    key: field,
    detail: field,
  });
  fc.assert(
    fc.property(map, (m) => checked(encodeCbor(m as never))),
    { numRuns: RUNS },
  );
});
