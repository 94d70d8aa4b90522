/** What the device announces of a prompt, as sys-remote's strict decoder reads it. */
import { describe, expect, test } from "bun:test";
import { decodeAnnouncement, encodeAnnouncement } from "../../core/qrexec/announcement.ts";
import { announcementOf, PAIRING_CLIENT } from "./announcer.ts";

describe("announcementOf", () => {
  test("a code pairing is announced under a valid client name, with the host's key; the host takes it", () => {
    const a = announcementOf({
      kind: "waiting",
      id: 3,
      code: "K7QD",
      request: {
        client: "qa-pub:0123abcd",
        service: "qubesair.Pair",
        operation: "pair",
        key: "qa-pub:0123abcd",
        pairing: { code: "123456", peerKey: "qa-pub:0123abcd", attempt: 1 },
      },
    });
    expect(decodeAnnouncement(encodeAnnouncement(a))).toMatchObject({
      client: PAIRING_CLIENT,
      key: "qa-pub:0123abcd",
      detail: "code 123456",
    });
  });

  test("a signature carries the digest, a call its argument", () => {
    const base = { client: "work", service: "qubes.Gpg2", operation: "PKSIGN", key: "K [F]" };
    const sign = announcementOf({
      kind: "approved",
      id: 1,
      code: "K7QD",
      request: { ...base, hashAlgo: "sha256", digestPrefix: "0123", digestSuffix: "cdef" },
    });
    expect(sign.detail).toBe("sha256 0123...cdef");
    const call = announcementOf({ kind: "denied", id: 2, code: "K7QD", request: { ...base, argument: "x" } });
    expect(call.detail).toBe("arg=x");
  });
});
