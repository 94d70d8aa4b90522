/**
 * The body of a qubesair.Approve call (docs/device-policy.md "Unattended signing"): one line of
 * ASCII, at most APPROVE_LIMITS.requestMaxBytes, ending in LF.
 *
 *   count N [SECONDS]           the next N signatures of the client (1..maxCount)
 *   digest ALGO HEX [SECONDS]   one signature of exactly this digest (the one the device shows
 *                               on its prompt: split-gpg2's SETHASH; ALGO sha256, sha384, ...)
 *   revoke                      every grant this approver gave the client ends now
 *
 * SECONDS (1..maxSeconds, default defaultSeconds) bounds the grant in time. Numbers are decimal
 * without leading zeros; HEX is upper- or lower-case and kept upper-case (as SETHASH carries it).
 * Pure; a peer's bytes become a value or a ProtocolError("schema") with our own words only.
 * Must never: accept a count, a time or a digest length outside the limits.
 */
import { ProtocolError } from "../errors.ts";
import { APPROVE_LIMITS } from "./services.ts";

/**
 * Digest names and their hex lengths, as split-gpg2's SETHASH table has them, SHA-2 only: a
 * grant for a SHA-1 or RIPEMD-160 digest would pass a signature that also holds for any data
 * colliding with the data the approver checked (chosen-prefix SHA-1 collisions are practical;
 * red team G1, docs/threat-model.md).
 */
export const APPROVE_DIGESTS: ReadonlyMap<string, number> = new Map([
  ["sha224", 56],
  ["sha256", 64],
  ["sha384", 96],
  ["sha512", 128],
]);

export type ApproveRequest =
  | { readonly kind: "count"; readonly count: number; readonly seconds: number }
  | { readonly kind: "digest"; readonly algo: string; readonly hex: string; readonly seconds: number }
  | { readonly kind: "revoke" };

function bad(what: string): never {
  throw new ProtocolError("schema", `approve request: ${what}`);
}

function number(text: string, max: number, what: string): number {
  if (!/^[1-9][0-9]{0,5}$/.test(text)) bad(`${what} must be a decimal number from 1`);
  const n = Number(text);
  if (n > max) bad(`${what} above ${max}`);
  return n;
}

export function parseApproveRequest(bytes: Uint8Array): ApproveRequest {
  if (bytes.length > APPROVE_LIMITS.requestMaxBytes) bad("too long");
  if (bytes.length === 0 || bytes[bytes.length - 1] !== 0x0a) bad("must be one line ending in LF");
  for (let i = 0; i < bytes.length - 1; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b > 0x7e) bad("only printable ASCII on one line");
  }
  const words = String.fromCharCode(...bytes.subarray(0, -1)).split(" ");
  const seconds = (w: string | undefined) =>
    w === undefined ? APPROVE_LIMITS.defaultSeconds : number(w, APPROVE_LIMITS.maxSeconds, "seconds");
  switch (words[0]) {
    case "revoke":
      if (words.length !== 1) bad("revoke takes nothing");
      return { kind: "revoke" };
    case "count":
      if (words.length < 2 || words.length > 3) bad("count N [SECONDS]");
      return {
        kind: "count",
        count: number(words[1]!, APPROVE_LIMITS.maxCount, "count"),
        seconds: seconds(words[2]),
      };
    case "digest": {
      if (words.length < 3 || words.length > 4) bad("digest ALGO HEX [SECONDS]");
      const algo = words[1]!;
      const length = APPROVE_DIGESTS.get(algo) ?? bad("unknown digest algorithm");
      const hex = words[2]!;
      if (hex.length !== length || !/^[0-9A-Fa-f]+$/.test(hex))
        bad("digest is not hex of its algorithm's length");
      return { kind: "digest", algo, hex: hex.toUpperCase(), seconds: seconds(words[3]) };
    }
    default:
      return bad("unknown request (count, digest or revoke)");
  }
}
