/**
 * Property test for the request parser of the dom0 service qubesair.RegisterRemote (Python,
 * packaging/files/dom0/), run as qrexec runs it in dom0 against the dom0 stand-in's model (its
 * qubesadmin stand-in), with the caller sys-remote: for any argument and any stdin bytes (random,
 * and built from the grammar's own words so that many are near-valid), the service answers one
 * line and exits 0, 1 or 2; it exits 2 ("bad request") exactly when the input is outside the
 * grammar (oracle: the grammar written again here), and dom0's model changes only on exit 0, and
 * then only in RemoteVMs relayed by sys-remote.
 * Each run starts a Python process: FUZZ_RUNS sets the runs (default 60, at most 400).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { isQubeLabel, isQubeName, QUBE_LABELS } from "../../core/qrexec/names.ts";
import { REGISTER_REMOTE_LIMITS, Service } from "../../core/qrexec/services.ts";
import { makeDom0 } from "../../fixtures/qubes-dom0/dom0.ts";

const RUNS = Math.min(Number(process.env.FUZZ_RUNS ?? 60), 400);
const ROOT = join(import.meta.dir, "..", "..");
const SCRIPT = join(ROOT, "packaging", "files", "dom0", Service.RegisterRemote);
const dir = mkdtempSync(join(tmpdir(), "qa-register-fuzz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dom0 = makeDom0(dir);

const name = (n: string) => isQubeName(n) && n !== "dom0";

/** The grammar, written again from docs/enrolment.md. */
function inGrammar(arg: string, stdin: Uint8Array): boolean {
  if (!name(arg) || stdin.length > REGISTER_REMOTE_LIMITS.maxRequestBytes) return false;
  const text = Buffer.from(stdin).toString("latin1");
  if (!text.endsWith("\n") || !/^[\x20-\x7e]*$/.test(text.slice(0, -1))) return false;
  const words = text.slice(0, -1).split(" ");
  if (words.length === 1 && words[0] === "unregister") return true;
  return words.length === 3 && words[0] === "register" && isQubeLabel(words[1]!) && name(words[2]!);
}

// biome-ignore format: a word list reads better packed
const WORDS = [
  "register", "unregister", ...QUBE_LABELS, "RED", "pink", "pi-gpg", "work", "sys-remote", "dom0",
  "x-dm", "9x", "a".repeat(31), "a".repeat(32), "$(id)", ";", "π", "\t", "\r", "\0", "", " ",
];
const ARGS = ["pi-gpg", "new-one", "work", "sys-remote", "dom0", "x-dm", "9x", "a+b", "", "a".repeat(32)];

const nearValid = fc
  .tuple(
    fc.array(fc.constantFrom(...WORDS), { minLength: 1, maxLength: 4 }),
    fc.constantFrom("\n", "", "\n\n", "\r\n"),
  )
  .map(([words, end]) => new TextEncoder().encode(`${words.join(" ")}${end}`));
const anyBytes = fc.uint8Array({ maxLength: 300 });
const valid = fc.oneof(
  fc.constant("unregister\n"),
  fc
    .tuple(fc.constantFrom(...QUBE_LABELS), fc.constantFrom(...ARGS, ...WORDS))
    .map(([label, n]) => `register ${label} ${n}\n`),
);

const exits = new Map<number | null, number>();

describe("qubesair.RegisterRemote request parser", () => {
  test("any argument, any stdin: one answer line; exit 2 exactly outside the grammar; the model changes only on success", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...ARGS), fc.stringMatching(/^[A-Za-z0-9_.+-]{0,40}$/)),
        fc.oneof(
          nearValid,
          valid.map((t) => new TextEncoder().encode(t)),
          anyBytes,
        ),
        (arg, stdin) => {
          const before = dom0.qubes();
          const r = spawnSync("python3", ["-S", SCRIPT, arg], {
            env: {
              PATH: dom0.path,
              QUBES_DOM0_MODEL: dom0.model,
              PYTHONPATH: join(ROOT, "fixtures", "qubes-dom0", "pylib"),
              QREXEC_REMOTE_DOMAIN: "sys-remote",
              QREXEC_SERVICE_ARGUMENT: arg,
              PYTHONDONTWRITEBYTECODE: "1",
            },
            input: stdin,
          });
          exits.set(r.status, (exits.get(r.status) ?? 0) + 1);
          const out = r.stdout.toString();
          expect(out).toMatch(/^(created|updated|removed|refused: [ -~]+|bad request: [ -~]+)\n$/);
          expect(r.status).toBe(out.startsWith("bad request") ? 2 : out.startsWith("refused") ? 1 : 0);
          expect({ arg, stdin: [...stdin], bad: r.status === 2 }).toEqual({
            arg,
            stdin: [...stdin],
            bad: !inGrammar(arg, stdin),
          });
          const after = dom0.qubes();
          if (r.status !== 0) expect(after).toEqual(before);
          for (const n of new Set([...Object.keys(before), ...Object.keys(after)])) {
            if (JSON.stringify(before[n]) === JSON.stringify(after[n])) continue;
            expect({ n, changed: n === arg }).toEqual({ n, changed: true });
            const q = after[n] ?? before[n]!;
            expect(q.prefs.relayvm).toBe("sys-remote");
            expect(q.tags).toContain("created-by-sys-remote");
          }
        },
      ),
      { numRuns: RUNS },
    );
    // The runs reached every outcome, not only refusals.
    expect([...exits.keys()].sort()).toEqual([0, 1, 2]);
  }, 600_000);
});
