import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type AuditFields, formatRecord, GENESIS_HASH } from "./record.ts";
import { describeVerifyResult, verifyAuditLog } from "./verify.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

const F: AuditFields = {
  time: "2026-01-02T03:04:05.000Z",
  client: "work",
  service: "qubes.Gpg2",
  operation: "PKSIGN",
  key: "Dev <d@x> [ABCD]",
  decision: "approved",
  result: "ok",
  detail: "sha256 01234567…89ABCDEF",
};

function chain(n: number, f: (i: number) => AuditFields = () => F): string {
  let prev = GENESIS_HASH;
  let text = "";
  for (let i = 1; i <= n; i++) {
    const r = formatRecord(i, f(i), prev);
    text += r.line;
    prev = r.hash;
  }
  return text;
}

function lines(t: string): string[] {
  return t.split("\n").slice(0, -1);
}

describe("audit log verification", () => {
  test("a good chain verifies; the head is the last hash", () => {
    const t = chain(5, (i) => ({ ...F, result: `exit ${i}` }));
    const r = verifyAuditLog(t);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.records).toHaveLength(5);
      expect(r.head).toBe(r.records[4]!.hash);
      expect(describeVerifyResult(r)).toBe(`audit log OK: 5 records, head ${r.head}`);
    }
    expect(verifyAuditLog("").ok).toBe(true);
  });

  test("the record format is fixed", () => {
    const { line, hash } = formatRecord(1, F, GENESIS_HASH);
    expect(line).toStartWith('{"seq":1,"time":"2026-01-02T03:04:05.000Z","client":"work",');
    expect(line).toEndWith(`"prev":"${GENESIS_HASH}","hash":"${hash}"}\n`);
  });

  test("an edited field: bad hash at that line", () => {
    const l = lines(chain(4));
    l[2] = l[2]!.replace('"decision":"approved"', '"decision":"denied"');
    expect(verifyAuditLog(`${l.join("\n")}\n`)).toMatchObject({ ok: false, line: 3, reason: "bad-hash" });
  });

  test("a deleted line: the next one breaks", () => {
    const l = lines(chain(4));
    l.splice(1, 1);
    expect(verifyAuditLog(`${l.join("\n")}\n`)).toMatchObject({ ok: false, line: 2, reason: "bad-seq" });
  });

  test("a re-hashed edit with a fixed seq: bad prev on the next line", () => {
    const l = lines(chain(3));
    const rec = JSON.parse(l[0]!);
    const forged = formatRecord(1, { ...F, decision: "denied" }, rec.prev);
    l[0] = forged.line.trimEnd();
    expect(verifyAuditLog(`${l.join("\n")}\n`)).toMatchObject({ ok: false, line: 2, reason: "bad-prev" });
  });

  test("swapped lines, extra spaces, extra fields, bad JSON: malformed or bad-seq", () => {
    const l = lines(chain(3));
    expect(verifyAuditLog(`${[l[1], l[0], l[2]].join("\n")}\n`)).toMatchObject({
      line: 1,
      reason: "bad-seq",
    });
    const spaced = l[1]!.replace('"seq":2', '"seq": 2');
    expect(verifyAuditLog(`${[l[0], spaced, l[2]].join("\n")}\n`)).toMatchObject({
      line: 2,
      reason: "malformed",
    });
    const extra = l[1]!.replace('{"seq":2', '{"x":1,"seq":2');
    expect(verifyAuditLog(`${[l[0], extra].join("\n")}\n`)).toMatchObject({ line: 2, reason: "malformed" });
    expect(verifyAuditLog(`${l[0]}\n{"seq":\n`)).toMatchObject({ line: 2, reason: "malformed" });
    expect(verifyAuditLog(`${l[0]}\n\n`)).toMatchObject({ line: 2, reason: "malformed" });
  });

  test("a torn last line is 'truncated' at its line", () => {
    const t = chain(3);
    const r = verifyAuditLog(t.slice(0, -20));
    expect(r).toMatchObject({ ok: false, line: 3, reason: "truncated" });
    if (!r.ok)
      expect(describeVerifyResult(r)).toBe(
        "audit log broken at line 3: truncated (2 records before it verified)",
      );
  });

  test("pins catch a log cut short or rebuilt from the start", () => {
    const t = chain(4);
    const r = verifyAuditLog(t);
    if (!r.ok) throw new Error("unreachable");
    const pin = { seq: 3, hash: r.records[2]!.hash };
    expect(verifyAuditLog(t, pin).ok).toBe(true);
    expect(verifyAuditLog(chain(2), pin)).toMatchObject({ ok: false, reason: "pin-missing", line: 3 });
    const rebuilt = chain(4, (i) => ({ ...F, result: i === 1 ? "forged" : "ok" }));
    expect(verifyAuditLog(rebuilt, pin)).toMatchObject({ ok: false, reason: "pin-mismatch", line: 3 });
  });

  test("fuzz: flipping any byte breaks the chain at that line or earlier, never later", () => {
    const t = chain(6, (i) => ({ ...F, detail: `n${i}` }));
    const bytes = new TextEncoder().encode(t);
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const b = bytes.slice();
        b[pos] = b[pos]! ^ x;
        const text = new TextDecoder().decode(b);
        const r = verifyAuditLog(text);
        const lineOfPos = new TextDecoder().decode(bytes.slice(0, pos)).split("\n").length;
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.line).toBeLessThanOrEqual(lineOfPos + 1);
      }),
      { numRuns: RUNS },
    );
  });

  test("fuzz: arbitrary text never throws", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (s) => {
        verifyAuditLog(s);
      }),
      { numRuns: RUNS },
    );
  });
});
