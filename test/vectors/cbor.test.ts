/** Runs test/vectors/cbor/rfc8949.json (see its README) against the strict CBOR codec. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isProtocolError } from "../../core/errors.ts";
import { type CborMap, type CborValue, decodeCbor, encodeCbor } from "../../core/wire/cbor.ts";

interface VectorCase {
  hex: string;
  valid: boolean;
  decoded?: unknown;
  error?: string;
  source: string;
  note?: string;
}

const file = JSON.parse(readFileSync(join(import.meta.dir, "cbor", "rfc8949.json"), "utf8")) as {
  cases: VectorCase[];
};

/** JSON with the $bytes/$bigint conventions -> the value decodeCbor should return. */
function fromJson(v: unknown): CborValue {
  if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string") return v;
  if (Array.isArray(v)) return v.map(fromJson);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === "$bytes") return Buffer.from(o.$bytes as string, "hex");
  if (keys.length === 1 && keys[0] === "$bigint") return BigInt(o.$bigint as string);
  const out = Object.create(null) as CborMap;
  for (const k of keys) out[k] = fromJson(o[k]);
  return out;
}

/** Stricter than toEqual: also compares number vs bigint and plain Uint8Array contents. */
function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && same(ra[k], rb[k]));
  }
  return Object.is(a, b);
}

describe("RFC 8949 vectors", () => {
  test("the file has its cases", () => expect(file.cases.length).toBeGreaterThan(200));
  for (const c of file.cases) {
    const name = `${c.valid ? "valid" : c.error} ${c.hex.slice(0, 40) || "(empty)"}: ${c.note ?? c.source}`;
    test(name, () => {
      const bytes = Buffer.from(c.hex, "hex");
      if (c.valid) {
        const value = decodeCbor(bytes);
        expect(same(value, fromJson(c.decoded))).toBe(true);
        expect(Buffer.from(encodeCbor(value)).toString("hex")).toBe(c.hex);
        expect(Buffer.from(encodeCbor(fromJson(c.decoded))).toString("hex")).toBe(c.hex);
      } else {
        let thrown: unknown;
        try {
          decodeCbor(bytes);
        } catch (e) {
          thrown = e;
        }
        expect(isProtocolError(thrown)).toBe(true);
        expect((thrown as { code: string }).code).toBe(c.error!);
      }
    });
  }
});
