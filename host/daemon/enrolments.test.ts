/**
 * The pending-enrolments file and the by-id identity match: strict parsing (unknown fields,
 * bad tokens, names, labels and identities are ConfigErrors), a round trip through the file
 * format, and the match of a by-id name chosen by a device (property test: any string gives one
 * of the three answers, and "match" only for the exact udev name of the recorded identity).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ConfigError } from "../../core/errors.ts";
import {
  type Enrolment,
  formatEnrolments,
  matchSerialEntry,
  parseEnrolments,
  parseIdentity,
  tokenHash,
  udevField,
} from "./enrolments.ts";

const usb = {
  usb: { vendor: "qubes-air", product: "qubes-air Raspberry Pi 4 / 400 / CM4", serial: "QA-0123ABCD" },
};
const e: Enrolment = {
  name: "pi-gpg",
  zone: "usb",
  label: "gray",
  token: new Uint8Array(32).fill(7),
  identity: usb,
  createdAt: "2026-01-02T03:04:05.000Z",
  expiresAt: "2026-01-09T03:04:05.000Z",
};

describe("enrolments file", () => {
  test("round trip; the token is hex in the file and a spent list of hashes", () => {
    const text = formatEnrolments({ pending: [e], spent: [tokenHash(new Uint8Array(32))] });
    expect(text).toContain("07".repeat(32));
    expect(parseEnrolments(text, "f")).toEqual({ pending: [e], spent: [tokenHash(new Uint8Array(32))] });
  });

  test("strict: each wrong field is a ConfigError naming it", () => {
    const good = JSON.parse(formatEnrolments({ pending: [e], spent: [] }));
    const bad = (mutate: (o: Record<string, unknown>) => void) => {
      const o = structuredClone(good);
      mutate(o.pending[0]);
      return () => parseEnrolments(JSON.stringify(o), "f");
    };
    expect(bad((p) => (p.extra = 1))).toThrow('unknown field "extra"');
    expect(bad((p) => (p.token = "zz".repeat(32)))).toThrow('"token"');
    expect(bad((p) => (p.name = "-bad"))).toThrow('"name"');
    expect(bad((p) => (p.label = "pink"))).toThrow('"label"');
    expect(bad((p) => (p.expiresAt = "tomorrow"))).toThrow('"expiresAt"');
    expect(bad((p) => (p.identity = { usb: usb.usb, tcp: "a:1" }))).toThrow('"usb" stands alone');
    expect(bad((p) => (p.identity = { mac: "aa:bb:cc:dd:ee:ff" }))).toThrow(ConfigError);
    expect(() => parseEnrolments('{"version":2,"pending":[],"spent":[]}', "f")).toThrow('"version"');
    expect(() => parseEnrolments("{", "f")).toThrow(ConfigError);
  });

  test("identities: USB strings printable and bounded; MAC normalised; TCP checked", () => {
    expect(parseIdentity({ mac: "AA:BB:CC:DD:EE:FF", tcp: "10.0.0.1:7441" }, "i")).toEqual({
      mac: "aa:bb:cc:dd:ee:ff",
      tcp: "10.0.0.1:7441",
    });
    expect(() => parseIdentity({ usb: { ...usb.usb, product: "a\nb" } }, "i")).toThrow(ConfigError);
    expect(() => parseIdentity({ usb: { ...usb.usb, serial: "QA/1" } }, "i")).toThrow(ConfigError);
    expect(() => parseIdentity({ tcp: "no-port" }, "i")).toThrow(ConfigError);
  });
});

describe("matching a by-id entry", () => {
  const exact = "usb-qubes-air_qubes-air_Raspberry_Pi_4___400___CM4_QA-0123ABCD-if00";

  test("udev's name for the recorded identity matches; the serial with other strings is another identity", () => {
    expect(udevField(" qubes-air  Pi / 4 ")).toBe("qubes-air_Pi___4");
    expect(matchSerialEntry(exact, usb)).toBe("match");
    expect(matchSerialEntry(exact.replace("-if00", "-if02-port1"), usb)).toBe("match");
    expect(matchSerialEntry("usb-Evil_Keyboard_QA-0123ABCD-if00", usb)).toBe("other-identity");
    expect(matchSerialEntry("usb-qubes-air_qubes-air_Raspberry_Pi_4___400___CM4_QA-0123ABCD", usb)).toBe(
      "other-identity",
    );
    expect(matchSerialEntry(exact.replace("QA-0123ABCD", "QA-0123ABCDE"), usb)).toBe("none");
    expect(matchSerialEntry(exact.replace("QA-0123ABCD", "XQA-0123ABCD"), usb)).toBe("none");
    expect(matchSerialEntry(exact, { tcp: "a:1" })).toBe("none");
  });

  test("property: any by-id name gives one of the three answers; match only for the exact name", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 120 }), fc.string({ maxLength: 8 }), (prefix, suffix) => {
        for (const name of [
          prefix,
          `${prefix}_QA-0123ABCD-if00${suffix}`,
          `usb-${prefix}_QA-0123ABCD-if00`,
        ]) {
          const m = matchSerialEntry(name, usb);
          expect(["match", "other-identity", "none"]).toContain(m);
          if (m === "match")
            expect(
              /^usb-qubes-air_qubes-air_Raspberry_Pi_4___400___CM4_QA-0123ABCD-if[0-9a-f]{2}(-port\d+)?$/.test(
                name,
              ),
            ).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
