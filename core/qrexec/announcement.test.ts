/** The device's announcements as sys-remote decodes them: strict, bounded, printable. */
import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../errors.ts";
import { encodeCbor } from "../wire/cbor.ts";
import {
  ANNOUNCEMENT_MAX_BYTES,
  type Announcement,
  decodeAnnouncement,
  encodeAnnouncement,
  formatAnnouncement,
  isRequestCode,
  requestCodeOf,
} from "./announcement.ts";

const A: Announcement = {
  event: "approved",
  id: 7,
  code: "K7QD",
  client: "work",
  service: "qubes.Gpg2",
  operation: "PKSIGN",
  key: "Dev <d@example.org> [ABCD]",
  detail: "sha256 01234567...89ABCDEF",
};

const code = (f: () => unknown) => {
  try {
    f();
    return "ok";
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e;
  }
};

describe("announcements", () => {
  test("request codes: from the unambiguous alphabet, checked by isRequestCode", () => {
    for (let i = 0; i < 256; i += 3) {
      const c = requestCodeOf(Uint8Array.of(i, 255 - i, i ^ 0x5a, 7));
      expect(isRequestCode(c)).toBe(true);
      expect(c).not.toMatch(/[01IOLSB58]/);
    }
    expect(() => requestCodeOf(new Uint8Array(3))).toThrow();
  });

  test("a timeout reads as expired in the journal", () => {
    expect(formatAnnouncement("pi", { ...A, event: "timeout" })).toStartWith("pi: expired [K7QD] #7:");
  });

  test("round trip, and the journal line names the device, the client, the key and the digest", () => {
    expect(decodeAnnouncement(encodeAnnouncement(A))).toEqual(A);
    expect(formatAnnouncement("pi-gpg", A)).toBe(
      "pi-gpg: approved [K7QD] #7: work asks for PKSIGN (qubes.Gpg2) with Dev <d@example.org> [ABCD] sha256 01234567...89ABCDEF",
    );
  });

  test("control characters and non-ASCII from the device become _ before anyone sees them", () => {
    const evil = { ...A, key: "K\x1b[2J\nforged line\u202e", operation: "sign\r" };
    const got = decodeAnnouncement(encodeCbor({ v: 2, ...evil }));
    expect(got.key).toBe("K_[2J_forged line_");
    expect(got.operation).toBe("sign_");
    expect(formatAnnouncement("pi", got)).not.toMatch(/[\x00-\x1f\x7f-\uffff]/);
  });

  test("anything but the exact schema is refused with a fixed code", () => {
    const base = { v: 2, ...A } as Record<string, unknown>;
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, extra: 1 } as never)))).toBe("schema");
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, v: 1 } as never)))).toBe("schema");
    for (const bad of ["k7qd", "K7Q", "K7QDX", "K0QD", "K7Q\n", ""])
      expect(code(() => decodeAnnouncement(encodeCbor({ ...base, code: bad } as never)))).toBe("schema");
    const { code: _, ...noCode } = base;
    expect(code(() => decodeAnnouncement(encodeCbor({ ...noCode, v: 1 } as never)))).toBe("schema");
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, event: "busy" } as never)))).toBe("schema");
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, id: -1 } as never)))).toBe("schema");
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, client: "bad name" } as never)))).toBe(
      "schema",
    );
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, key: "x".repeat(257) } as never)))).toBe(
      "schema",
    );
    expect(code(() => decodeAnnouncement(new Uint8Array(ANNOUNCEMENT_MAX_BYTES + 1)))).toBe(
      "frame-too-large",
    );
    expect(code(() => decodeAnnouncement(Uint8Array.of(0xff)))).toBe("schema");
  });
});
