import { describe, expect, test } from "bun:test";
import { parseSealed, SealedFileError, seal, unseal, WrongPinError } from "./sealed.ts";

const FAST = { N: 2 ** 10, r: 8, p: 1 };
const files = new Map([
  ["AAAA.key", new TextEncoder().encode("Created: x\nKey: (private-key ...)\n")],
  ["BBBB.key", new Uint8Array([0, 1, 2, 255])],
]);

describe("sealed key file", () => {
  test("the right PIN gives back the files; the plaintext is not in the sealed bytes", async () => {
    const sealed = await seal(files, "482913", FAST);
    expect(Buffer.from(sealed).includes(Buffer.from("private-key"))).toBe(false);
    const back = await unseal(sealed, "482913");
    expect([...back.keys()]).toEqual(["AAAA.key", "BBBB.key"]);
    expect(back.get("AAAA.key")).toEqual(files.get("AAAA.key")!);
    expect(back.get("BBBB.key")).toEqual(files.get("BBBB.key")!);
  });

  test("a wrong PIN, a flipped body bit and a changed KDF parameter all fail the same way", async () => {
    const sealed = await seal(files, "482913", FAST);
    await expect(unseal(sealed, "482914")).rejects.toBeInstanceOf(WrongPinError);
    const flipped = Uint8Array.from(sealed);
    flipped[flipped.length - 20]! ^= 1;
    await expect(unseal(flipped, "482913")).rejects.toBeInstanceOf(WrongPinError);
    // A thief lowering the work factor to guess faster gets a file that no PIN opens.
    const text = Buffer.from(sealed).toString("latin1").replace('"N":1024', '"N":512 ');
    await expect(unseal(Buffer.from(text, "latin1"), "482913")).rejects.toBeInstanceOf(WrongPinError);
  });

  test("the PIN is compared after Unicode normalisation (NFC)", async () => {
    const sealed = await seal(files, "caf\u00e9", FAST);
    expect((await unseal(sealed, "cafe\u0301")).size).toBe(2);
  });

  test("headers that would allocate too much, or are not ours, are refused before any KDF", () => {
    const head = (h: object) =>
      Buffer.from(`qubes-air sealed key v1\n${JSON.stringify(h)}\n${"x".repeat(32)}`);
    const base = {
      kdf: "scrypt",
      N: 1024,
      r: 8,
      p: 1,
      salt: Buffer.alloc(16).toString("base64"),
      nonce: Buffer.alloc(12).toString("base64"),
    };
    expect(parseSealed(head(base)).header.N).toBe(1024);
    for (const bad of [
      { ...base, N: 2 ** 20, r: 8 }, // 2 GiB
      { ...base, N: 1000 },
      { ...base, kdf: "pbkdf2" },
      { ...base, nonce: Buffer.alloc(8).toString("base64") },
      { ...base, salt: "" },
    ])
      expect(() => parseSealed(head(bad))).toThrow(SealedFileError);
    expect(() => parseSealed(Buffer.from("-----BEGIN PGP PRIVATE KEY BLOCK-----\n"))).toThrow(
      SealedFileError,
    );
  });
});
