import { describe, expect, test } from "bun:test";
import { ConfigError, ProtocolError } from "../errors.ts";
import { dh25519 } from "../noise/crypto-noble.ts";
import {
  formatKeyFile,
  formatPublicKey,
  generateStaticKeyPair,
  KEY_FILE_HEADER,
  parseKeyFile,
  parsePublicKey,
  publicKeyFromBytes,
  staticKeyPairFromPrivate,
} from "./key-text.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const pair = staticKeyPairFromPrivate(Uint8Array.from({ length: 32 }, (_, i) => i + 1));
const privHex = hex(pair.privateKey);
const pubHex = hex(pair.publicKey);
const other = generateStaticKeyPair();

/** The ConfigError thrown by f; fails if f does not throw one, or if it leaks key material. */
function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const message = (e as Error).message;
    for (const secret of [privHex, privHex.slice(0, 16), privHex.toUpperCase().slice(0, 16)]) {
      expect(message).not.toContain(secret);
    }
    return message;
  }
  throw new Error("expected a ConfigError");
}

describe("key file text", () => {
  test("has the documented layout", () => {
    expect(formatKeyFile(pair)).toBe(
      `${KEY_FILE_HEADER}\nprivate: qa-priv:${privHex}\npublic: qa-pub:${pubHex}\n`,
    );
  });

  test("round-trips, and the public key is the derived one", () => {
    const fresh = generateStaticKeyPair();
    const parsed = parseKeyFile(formatKeyFile(fresh));
    expect(parsed.privateKey).toEqual(fresh.privateKey);
    expect(parsed.publicKey as Uint8Array).toEqual(dh25519.keyPairFromPrivate(fresh.privateKey).publicKey);
  });

  test("tolerates comments, blank lines, CRLF, spaces, order and upper-case hex", () => {
    const text = `\r\n  # mine\r\n\tpublic :  qa-pub:${pubHex.toUpperCase()}  \r\n\r\nprivate:qa-priv:${privHex}\r\n`;
    const parsed = parseKeyFile(text);
    expect(parsed.privateKey).toEqual(pair.privateKey);
    expect(parsed.publicKey).toEqual(pair.publicKey);
  });

  test("a public key that does not belong to the private key is refused", () => {
    const text = `private: qa-priv:${privHex}\npublic: ${formatPublicKey(other.publicKey)}\n`;
    expect(configError(() => parseKeyFile(text, "/k"))).toContain("does not belong to the private key");
  });

  test.each([
    ["missing private", `public: qa-pub:${pubHex}`, 'no "private: qa-priv:..." line'],
    ["missing public", `private: qa-priv:${privHex}`, 'no "public: qa-pub:..." line'],
    ["empty", "", 'no "private:'],
    ["only comments", "# a\n# b\n", 'no "private:'],
    [
      "duplicate private",
      `private: qa-priv:${privHex}\nprivate: qa-priv:${privHex}\npublic: qa-pub:${pubHex}`,
      "line 2: a second",
    ],
    [
      "duplicate public",
      `private: qa-priv:${privHex}\npublic: qa-pub:${pubHex}\npublic: qa-pub:${pubHex}`,
      "line 3: a second",
    ],
    ["unknown line", `private: qa-priv:${privHex}\nseed: 1234\npublic: qa-pub:${pubHex}`, "line 2: expected"],
    ["bare key line", `qa-priv:${privHex}\npublic: qa-pub:${pubHex}`, "line 1: expected"],
    ["no prefix", `private: ${privHex}\npublic: qa-pub:${pubHex}`, 'must start with "qa-priv:"'],
    ["swapped prefixes", `private: qa-pub:${privHex}\npublic: qa-priv:${pubHex}`, "swapped"],
    [
      "short key",
      `private: qa-priv:${privHex.slice(2)}\npublic: qa-pub:${pubHex}`,
      "64 hex digits (32 bytes), not 62",
    ],
    ["long key", `private: qa-priv:${privHex}00\npublic: qa-pub:${pubHex}`, "not 66"],
    ["short public", `private: qa-priv:${privHex}\npublic: qa-pub:${pubHex.slice(1)}`, "not 63"],
    ["not hex", `private: qa-priv:${privHex.slice(1)}g\npublic: qa-pub:${pubHex}`, "hexadecimal"],
    ["base64 instead of hex", `private: qa-priv:${btoa(privHex)}\npublic: qa-pub:${pubHex}`, "hexadecimal"],
    ["zero key", `private: qa-priv:${"0".repeat(64)}\npublic: qa-pub:${pubHex}`, "all zeros"],
  ])("%s is refused", (_name, text, message) => {
    expect(configError(() => parseKeyFile(text, "/etc/k"))).toContain(message);
  });

  test("errors name the source", () => {
    expect(configError(() => parseKeyFile("", "/rw/qubes-air/key"))).toStartWith("/rw/qubes-air/key");
  });
});

describe("public key text", () => {
  test("qa-pub form round-trips", () => {
    expect(formatPublicKey(pair.publicKey)).toBe(`qa-pub:${pubHex}`);
    expect(parsePublicKey(formatPublicKey(pair.publicKey))).toEqual(pair.publicKey);
  });

  test("a public-key file with comments, a label and a newline is read", () => {
    expect(parsePublicKey(`# host sys-remote\npublic: qa-pub:${pubHex}\n`)).toEqual(pair.publicKey);
    expect(parsePublicKey(`  qa-pub:${pubHex}\r\n`)).toEqual(pair.publicKey);
  });

  test.each([
    ["empty", "", "is empty"],
    ["two keys", `qa-pub:${pubHex}\nqa-pub:${hex(other.publicKey)}`, "has 2 lines"],
    ["a private key", `qa-priv:${privHex}`, "holds a private key"],
    ["a whole key file", formatKeyFile(pair), "holds a private key"],
    ["no prefix", pubHex, 'must start with "qa-pub:"'],
    ["short", `qa-pub:${pubHex.slice(2)}`, "not 62"],
    ["zero", `qa-pub:${"0".repeat(64)}`, "all zeros"],
  ])("%s is refused", (_name, text, message) => {
    expect(configError(() => parsePublicKey(text, "pinned"))).toContain(message);
  });
});

describe("public key from bytes", () => {
  test("32 bytes become a key, copied (the caller may reuse its buffer)", () => {
    const bytes = Uint8Array.from(pair.publicKey);
    const key = publicKeyFromBytes(bytes);
    expect(key).toEqual(pair.publicKey);
    bytes.fill(0);
    expect(formatPublicKey(key)).toBe(`qa-pub:${pubHex}`);
  });

  test.each([0, 31, 33, 56])("%i bytes are a peer fault (handshake-malformed)", (n) => {
    let error: unknown;
    try {
      publicKeyFromBytes(new Uint8Array(n).fill(7));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe("handshake-malformed");
  });
});
