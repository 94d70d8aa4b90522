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
} from "./announcement.ts";

const A: Announcement = {
  event: "approved",
  id: 7,
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
  test("round trip, and the journal line names the device, the client, the key and the digest", () => {
    expect(decodeAnnouncement(encodeAnnouncement(A))).toEqual(A);
    expect(formatAnnouncement("pi-gpg", A)).toBe(
      "pi-gpg: approved #7: work asks for PKSIGN (qubes.Gpg2) with Dev <d@example.org> [ABCD] sha256 01234567...89ABCDEF",
    );
  });

  test("control characters and non-ASCII from the device become _ before anyone sees them", () => {
    const evil = { ...A, key: "K\x1b[2J\nforged line\u202e", operation: "sign\r" };
    const got = decodeAnnouncement(encodeCbor({ v: 1, ...evil }));
    expect(got.key).toBe("K_[2J_forged line_");
    expect(got.operation).toBe("sign_");
    expect(formatAnnouncement("pi", got)).not.toMatch(/[\x00-\x1f\x7f-\uffff]/);
  });

  test("anything but the exact schema is refused with a fixed code", () => {
    const base = { v: 1, ...A } as Record<string, unknown>;
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, extra: 1 } as never)))).toBe("schema");
    expect(code(() => decodeAnnouncement(encodeCbor({ ...base, v: 2 } as never)))).toBe("schema");
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
