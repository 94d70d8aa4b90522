/**
 * Unit tests of the nonce encodings in crypto.ts (Noise spec §12.3, §12.4): all 64 bits of n,
 * in each cipher's byte order.
 */
import { describe, expect, test } from "bun:test";
import { aesgcmNonce, chachaNonce } from "./crypto.ts";

describe("nonce encoding", () => {
  test("all 64 bits count: 2^32 differs from 0 (the noise-handshake bug)", () => {
    expect(chachaNonce(2n ** 32n)).not.toEqual(chachaNonce(0n));
    expect(aesgcmNonce(2n ** 32n)).not.toEqual(aesgcmNonce(0n));
  });
  test("ChaChaPoly is little-endian, AESGCM big-endian, after 4 zero bytes", () => {
    expect([...chachaNonce(0x0102030405060708n)]).toEqual([0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect([...aesgcmNonce(0x0102030405060708n)]).toEqual([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
