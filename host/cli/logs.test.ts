import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatRecord, GENESIS_HASH } from "../../core/audit/record.ts";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import type { CliContext } from "../../platform/cli/command.ts";
import { runProgram } from "../../platform/cli/dispatch.ts";
import { loadPins, parsePinArg, savePin } from "./audit-pins.ts";
import { escapeText, formatRecords } from "./logs.ts";
import { HOST_PROGRAM } from "./program.ts";

const main = (argv: string[], ctx: CliContext) => runProgram(HOST_PROGRAM, argv, ctx);

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "qa-logs-"));
  dirs.push(d);
  return d;
};

describe("qubes-air logs: pins and output", () => {
  test("--pin SEQ:HASH", () => {
    const h = "a".repeat(64);
    expect(parsePinArg(`12:${h}`)).toEqual({ seq: 12, hash: h });
    for (const bad of [`0:${h}`, `x:${h}`, "12:abc", `12:${"A".repeat(64)}`, `12${h}`])
      expect(parsePinArg(bad)).toBeNull();
  });

  test("pins are saved 0600 per remote, never moved backwards for the same key", async () => {
    const path = join(temp(), "audit-pins.json");
    expect(await loadPins(path)).toEqual({});
    const pin = { seq: 5, hash: "b".repeat(64), agentKey: "qa-pub:k", verifiedAt: "t" };
    await savePin(path, "pi-gpg", pin);
    await savePin(path, "pi-gpg", { ...pin, seq: 3 });
    expect((await loadPins(path))["pi-gpg"]!.seq).toBe(5);
    await savePin(path, "pi-gpg", { ...pin, seq: 1, agentKey: "qa-pub:new" });
    expect((await loadPins(path))["pi-gpg"]).toMatchObject({ seq: 1, agentKey: "qa-pub:new" });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8")).version).toBe(1);
  });

  test("the table escapes control characters a device could send", () => {
    expect(escapeText("a\u001b[2Jb\u202ec")).toBe("a\\u001b[2Jb\\u202ec");
    let prev = GENESIS_HASH;
    const text = ["PKSIGN", "call"]
      .map((op, i) => {
        const f = formatRecord(
          i + 1,
          {
            time: "2026-01-02T03:04:05.678Z",
            client: "work",
            service: "qubes.Gpg2",
            operation: op,
            key: "Evil \u001b[31m <e@x> [F]",
            decision: "approved",
            result: "ok",
            detail: "",
          },
          prev,
        );
        prev = f.hash;
        return f.line;
      })
      .join("");
    const r = verifyAuditLog(text);
    const table = formatRecords(r.records);
    expect(table).not.toContain("\u001b");
    expect(table.split("\n")[1]).toMatch(
      /^1\s+2026-01-02 03:04:05Z\s+work\s+qubes.Gpg2\s+PKSIGN\s+approved\s+ok\s+Evil \\u001b\[31m/,
    );
  });

  test("--help of logs and flash shows usage with examples; usage errors exit 2", async () => {
    for (const name of ["logs", "flash"]) {
      let out = "";
      const code = await main([name, "--help"], { env: {}, out: (t) => (out += t), err: () => {} });
      expect(code).toBe(0);
      expect(out).toContain(`Usage: qubes-air ${name}`);
      expect(out).toContain("Examples:");
    }
    let err = "";
    const ctx = { env: { QUBES_AIR_STATE: temp() }, out: () => {}, err: (t: string) => (err += t) };
    expect(await main(["logs"], ctx)).toBe(2);
    expect(await main(["logs", "--pin", "7", "pi-gpg"], ctx)).toBe(2);
    expect(err).toContain("--pin must be SEQ:HASH");
    expect(await main(["flash", "only-one-arg"], ctx)).toBe(2);
  });
});
