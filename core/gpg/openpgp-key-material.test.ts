/**
 * The key-material reader behind qubes.GpgImportKey's fingerprints: exact bodies pass; bodies
 * with bytes after the key, cut short, with a wrong v6 count or an unknown algorithm do not;
 * any bytes give null or a reason, never a throw or a read past the body.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { keyMaterialProblem } from "./openpgp-key-material.ts";

const cat = (...p: number[][]) => Uint8Array.from(p.flat());
const head = (version: number, algo: number) => [version, 0x60, 0, 0, 0, algo];
const mpi = (bytes: number) => [(bytes * 8) >> 8, (bytes * 8) & 255, ...new Array(bytes).fill(0x80)];
const u32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

describe("keyMaterialProblem", () => {
  test("exact public keys pass; trailing, short, miscounted or unknown ones do not", () => {
    const rsa = cat(head(4, 1), mpi(256), mpi(3));
    expect(keyMaterialProblem(rsa)).toBeNull();
    expect(keyMaterialProblem(cat([...rsa], [0]))).toBe("bytes after the key material");
    expect(keyMaterialProblem(rsa.subarray(0, rsa.length - 1))).toBe("truncated key material");
    const ed25519v6 = cat(head(6, 27), u32(32), new Array(32).fill(1));
    expect(keyMaterialProblem(ed25519v6)).toBeNull();
    expect(keyMaterialProblem(cat(head(6, 27), u32(33), new Array(33).fill(1)))).toBe(
      "bytes after the key material",
    );
    expect(keyMaterialProblem(cat(head(6, 27), u32(31), new Array(31).fill(1)))).toBe(
      "truncated key material",
    );
    expect(keyMaterialProblem(cat(head(6, 27), u32(31), new Array(32).fill(1)))).toBe(
      "its key material count does not match",
    );
    const oid = [9, 0x2b, 6, 1, 4, 1, 0xda, 0x47, 0x0f, 1];
    expect(keyMaterialProblem(cat(head(4, 22), oid, mpi(33)))).toBeNull();
    expect(keyMaterialProblem(cat(head(4, 18), oid, mpi(33), [3, 1, 8, 9]))).toBeNull();
    expect(keyMaterialProblem(cat(head(4, 18), oid, mpi(33), [4, 1, 8, 9, 0]))).toBe("ECDH KDF parameters");
    expect(keyMaterialProblem(cat(head(4, 22), [0], mpi(33)))).toBe("curve OID length");
    expect(keyMaterialProblem(cat(head(4, 99), [1, 2, 3]))).toBe("unknown public-key algorithm");
  });

  test("fuzz: any bytes give null or a reason, never a throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const r = keyMaterialProblem(b);
        expect(r === null || typeof r === "string").toBe(true);
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(4, 5, 6),
        fc.integer({ min: 0, max: 30 }),
        fc.uint8Array({ maxLength: 200 }),
        (v, a, rest) => {
          const r = keyMaterialProblem(cat(head(v, a), [...rest]));
          expect(r === null || typeof r === "string").toBe(true);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
