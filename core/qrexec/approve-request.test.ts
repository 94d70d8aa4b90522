import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ProtocolError } from "../errors.ts";
import { parseApproveRequest } from "./approve-request.ts";
import { APPROVE_LIMITS } from "./services.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const H = "ab".repeat(32);

describe("qubesair.Approve request", () => {
  test("accepted forms", () => {
    expect(parseApproveRequest(enc("count 3\n"))).toEqual({
      kind: "count",
      count: 3,
      seconds: APPROVE_LIMITS.defaultSeconds,
    });
    expect(parseApproveRequest(enc("count 100 3600\n"))).toEqual({
      kind: "count",
      count: 100,
      seconds: 3600,
    });
    expect(parseApproveRequest(enc(`digest sha256 ${H} 60\n`))).toEqual({
      kind: "digest",
      algo: "sha256",
      hex: H.toUpperCase(),
      seconds: 60,
    });
    expect(parseApproveRequest(enc(`digest sha512 ${"0".repeat(128)} 3600\n`)).kind).toBe("digest");
    expect(parseApproveRequest(enc("revoke\n"))).toEqual({ kind: "revoke" });
  });

  test("refused: limits, shapes, bytes", () => {
    for (const s of [
      "",
      "count 3",
      "count 0\n",
      "count 101\n",
      "count 03\n",
      "count -1\n",
      "count 1e2\n",
      "count 3 3601\n",
      "count 3 0\n",
      "count 3 60 x\n",
      "count  3\n",
      "count 3 \n",
      "Count 3\n",
      "count 3\r\n",
      "count 3\n\n",
      "count\t3\n",
      `digest sha256 ${H.slice(1)}\n`,
      `digest sha256 ${H}0\n`,
      `digest sha256 ${H.slice(2)}zz\n`,
      `digest md5 ${"a".repeat(32)}\n`,
      `digest sha1 ${"a".repeat(40)}\n`, // red team G1: SHA-1 digests are never granted
      `digest rmd160 ${"a".repeat(40)}\n`,
      `digest sha256\n`,
      "revoke now\n",
      "please\n",
      `count 3 ${"1".repeat(300)}\n`,
      "count 3\u00a0\n",
    ]) {
      let got: unknown;
      try {
        parseApproveRequest(enc(s));
      } catch (e) {
        got = e;
      }
      expect([s, got instanceof ProtocolError]).toEqual([s, true]);
    }
  });

  test("fuzz: any bytes give a request within the limits or our ProtocolError", () => {
    const word = fc.oneof(
      fc.constantFrom("count", "digest", "revoke", "sha256", "sha1", "0", "1", "100", "3600", H, "\n", " "),
      fc.string({ maxLength: 8 }),
    );
    const text = fc.array(word, { maxLength: 6 }).map((ws) => enc(`${ws.join(" ")}\n`));
    fc.assert(
      fc.property(fc.oneof(text, fc.uint8Array({ maxLength: 300 })), (bytes) => {
        try {
          const r = parseApproveRequest(bytes);
          if (r.kind === "count") {
            expect(r.count).toBeGreaterThanOrEqual(1);
            expect(r.count).toBeLessThanOrEqual(APPROVE_LIMITS.maxCount);
          }
          if (r.kind !== "revoke") expect(r.seconds).toBeLessThanOrEqual(APPROVE_LIMITS.maxSeconds);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
          expect((e as ProtocolError).message).not.toContain("\n");
        }
      }),
      { numRuns: 3000 },
    );
  });
});
