/**
 * Unit tests of the vchan wire messages (messages.ts): layout of each type, the checks on every
 * field, and the size limits. Random records are in test/fuzz/vchan.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { outcome } from "../../test/helpers/outcome.ts";
import { rawRecord } from "../../test/helpers/vchan-script.ts";
import { VCHAN_DATA_HEADER_BYTES, VCHAN_MAX_CHUNK } from "../wire/limits.ts";
import { decodeVchan, encodeVchan, ResetReason, type VchanMessage, VchanType } from "./messages.ts";

describe("encodeVchan / decodeVchan", () => {
  test("each type has the documented layout and round-trips", () => {
    const cases: [VchanMessage, number[]][] = [
      [{ type: VchanType.OPEN, id: 2, meta: Uint8Array.of(0xa0) }, [1, 1, 0, 0, 0, 2, 0xa0]],
      [{ type: VchanType.DATA, id: 0x01020304, data: Uint8Array.of(7, 8) }, [1, 2, 1, 2, 3, 4, 7, 8]],
      [{ type: VchanType.EOF, id: 5 }, [1, 3, 0, 0, 0, 5]],
      [{ type: VchanType.CREDIT, id: 5, bytes: 0x10000 }, [1, 4, 0, 0, 0, 5, 0, 1, 0, 0]],
      [{ type: VchanType.RESET, id: 5, reason: ResetReason.LIMIT }, [1, 5, 0, 0, 0, 5, 2]],
    ];
    for (const [m, bytes] of cases) {
      expect([...encodeVchan(m)]).toEqual(bytes);
      expect(decodeVchan(Uint8Array.from(bytes))).toEqual(m);
    }
  });

  test("payloads land 64-byte aligned in their buffer, and decoding does not copy them", () => {
    const r = encodeVchan({ type: VchanType.DATA, id: 1, data: new Uint8Array(100) });
    expect((r.byteOffset + VCHAN_DATA_HEADER_BYTES) % 64).toBe(0);
    const m = decodeVchan(r);
    expect(m.type === VchanType.DATA && m.data.buffer).toBe(r.buffer);
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
