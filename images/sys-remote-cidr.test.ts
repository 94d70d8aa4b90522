/**
 * parseSysRemoteCidr (the firewall's one source): open and nearly open ranges, lists, names and
 * host bits are refused as usage errors (exit 2); on arbitrary text it returns a canonical CIDR no
 * wider than MIN_PREFIX or throws ImageError, never anything else; and the regex the HCL
 * validation uses (tofu-modules.ts cidrRegex) accepts every value the parser returns and nothing
 * wider than the parser allows, so tofu refuses what the CLI refuses.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { EXIT } from "../core/cli/exit-codes.ts";
import { ImageError } from "./common.ts";
import { MIN_PREFIX, parseSysRemoteCidr } from "./sys-remote-cidr.ts";
import { cidrRegex } from "./tofu-modules.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const HCL_REGEX = new RegExp(cidrRegex());

function refusal(text: string): ImageError {
  try {
    parseSysRemoteCidr(text);
  } catch (e) {
    if (e instanceof ImageError) return e;
    throw e;
  }
  throw new Error(`accepted ${JSON.stringify(text)}`);
}

describe("parseSysRemoteCidr", () => {
  test("an address is a /32; a network keeps its prefix", () => {
    expect(parseSysRemoteCidr("203.0.113.7")).toBe("203.0.113.7/32");
    expect(parseSysRemoteCidr("203.0.113.7/32")).toBe("203.0.113.7/32");
    expect(parseSysRemoteCidr("198.51.100.0/24")).toBe("198.51.100.0/24");
    expect(parseSysRemoteCidr(`10.1.0.0/${MIN_PREFIX}`)).toBe(`10.1.0.0/${MIN_PREFIX}`);
  });

  test("open, wide, listed, named, malformed or special sources are refused (exit 2, saying what to give)", () => {
    const cases: [string, RegExp][] = [
      ["0.0.0.0/0", /would admit 4294967296 addresses/],
      ["203.0.113.7/0", /would admit 4294967296 addresses/],
      ["0.0.0.0/1", /would admit/],
      ["10.0.0.0/8", /would admit 16777216 addresses .* widest allowed is \/16/],
      [`10.0.0.0/${MIN_PREFIX - 1}`, /would admit/],
      ["", /must be sys-remote's public IPv4 address/],
      ["203.0.113.7/24", /has host bits set: give 203.0.113.0\/24 .* or 203.0.113.7/],
      ["203.0.113.7,198.51.100.1", /must be/],
      ["203.0.113.7 198.51.100.1", /must be/],
      ["+ipset", /must be/],
      ["sys-remote.example.org", /must be/],
      ["203.0.113.7/", /is not a prefix length/],
      ["203.0.113.7/33", /is not a prefix length/],
      ["203.0.113.7/032", /is not a prefix length/],
      ["203.0.113.7/24/32", /must be/],
      ["203.0.113.256", /must be/],
      ["203.0.113.07", /must be/],
      ["203.0.113", /must be/],
      ["2001:db8::1", /must be/],
      ["0.1.2.3", /not an address sys-remote can connect from/],
      ["127.0.0.1", /not an address sys-remote can connect from/],
      ["224.0.0.1", /not an address sys-remote can connect from/],
      ["255.255.255.255", /not an address sys-remote can connect from/],
    ];
    for (const [text, message] of cases) {
      const e = refusal(text);
      expect({ text, code: e.exitCode }).toEqual({ text, code: EXIT.USAGE });
      expect(e.message).toMatch(message);
      // The HCL validation refuses every one of these as well (its regex alone, or cidrhost's check).
      if (HCL_REGEX.test(text)) expect(text).toBe("203.0.113.7/24");
    }
  });

  test("arbitrary text: a canonical CIDR no wider than MIN_PREFIX, which the HCL regex accepts, or a usage error", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc
        .tuple(
          fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 3, maxLength: 5 }),
          fc.integer({ min: -1, max: 40 }),
        )
        .map(([o, p]) => `${o.join(".")}${p < 0 ? "" : `/${p}`}`),
    );
    fc.assert(
      fc.property(text, (t) => {
        let out: string;
        try {
          out = parseSysRemoteCidr(t);
        } catch (e) {
          if (!(e instanceof ImageError) || e.exitCode !== EXIT.USAGE) throw e;
          return;
        }
        expect(out).toMatch(HCL_REGEX);
        expect(Number(out.split("/")[1])).toBeGreaterThanOrEqual(MIN_PREFIX);
        expect(parseSysRemoteCidr(out)).toBe(out);
      }),
      { numRuns: RUNS },
    );
  });

  test("every network of MIN_PREFIX..32 with its host bits clear is accepted as it is", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 223 }),
        fc.nat(),
        fc.integer({ min: MIN_PREFIX, max: 32 }),
        (a, rest, p) => {
          fc.pre(a !== 127);
          const value = a * 2 ** 24 + (rest % 2 ** 24) - ((a * 2 ** 24 + (rest % 2 ** 24)) % 2 ** (32 - p));
          const addr = [24, 16, 8, 0].map((s) => Math.floor(value / 2 ** s) % 256).join(".");
          expect(parseSysRemoteCidr(`${addr}/${p}`)).toBe(`${addr}/${p}`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("the HCL regex refuses every prefix wider than MIN_PREFIX, lists and bare addresses", () => {
    for (let p = 0; p < MIN_PREFIX; p++) expect(HCL_REGEX.test(`10.0.0.0/${p}`)).toBe(false);
    for (const t of [
      "0.0.0.0/0",
      "203.0.113.7",
      "203.0.113.7/32,0.0.0.0/0",
      " 203.0.113.7/32",
      "203.0.113.7/32\n",
    ])
      expect(HCL_REGEX.test(t)).toBe(false);
  });
});
