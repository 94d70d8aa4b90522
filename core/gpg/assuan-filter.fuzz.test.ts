/**
 * Property tests for the split-gpg2 filter: whatever the client and the agent send, in whatever
 * pieces, the filter never throws, never forwards a line outside the strict grammar of what
 * split-gpg2 lets through, forwards PKSIGN/PKDECRYPT only right after an approval, and does
 * nothing after it closed. No keygrip but a served subkey's ever reaches the agent (KEYINFO,
 * HAVEKEY: issue 15), and HAVEKEY --list never does (the device answers it).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ENCR, LISTING, PRIMARY, SIGN } from "../../test/fixtures/gpg/listing.ts";
import { binary, fromBinary } from "./assuan.ts";
import { AssuanFilter, type FilterEffect } from "./assuan-filter.ts";
import { parseSecretKeyListing } from "./keyring.ts";
import { checkEncVal, parseSexp } from "./sexp.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const KEYS = parseSecretKeyListing(LISTING);
/** The served subkeys: the only keygrips that may reach the agent. */
const G = `(${SIGN}|${ENCR})`;
const FORWARDED = new RegExp(
  [
    "RESET",
    "BYE",
    "GETINFO (version|restricted|s2k_count)",
    "OPTION agent-awareness=2\\.1\\.0",
    `HAVEKEY ${G}( ${G}){0,199}`,
    `KEYINFO (--list(=[1-9][0-9]{0,3})?|${G})`,
    `(SIGKEY|SETKEY) (${SIGN}|${ENCR})`,
    "SETHASH (2 [0-9A-F]{40}|3 [0-9A-F]{40}|8 [0-9A-F]{64}|9 [0-9A-F]{96}|10 [0-9A-F]{128}|11 [0-9A-F]{56})",
    "PKSIGN( -- [0-9A-F]{24})?",
    "PKDECRYPT",
    "SETKEYDESC [!-~]+",
    "END",
  ]
    .map((x) => `(${x})`)
    .join("|"),
);

function checkAgentLine(data: Uint8Array): void {
  expect(data.at(-1)).toBe(10);
  const text = binary(data.subarray(0, -1));
  expect(text.length).toBeLessThanOrEqual(1002);
  if (text.startsWith("D ")) {
    const raw = fromBinary(
      text.slice(2).replace(/%([0-9a-f]{2})/g, (_m, h) => String.fromCharCode(Number.parseInt(h, 16))),
    );
    checkEncVal(parseSexp(raw));
    return;
  }
  expect(text).toMatch(new RegExp(`^(${FORWARDED.source})$`));
}

const H = "0123456789ABCDEF".repeat(4);
const clientLine = fc.oneof(
  fc.constantFrom(
    "RESET",
    "NOP",
    "BYE",
    "GETINFO version",
    "OPTION ttyname=/dev/x",
    "OPTION agent-awareness=2.1.0",
    `HAVEKEY ${SIGN} ${ENCR} ${PRIMARY}`,
    "HAVEKEY --list=5",
    `KEYINFO ${SIGN}`,
    `KEYINFO ${PRIMARY}`,
    "KEYINFO 0123456789ABCDEF0123456789ABCDEF01234567",
    `HAVEKEY ${PRIMARY}`,
    "KEYINFO --list",
    "SCD SERIALNO",
    "SCD LEARN --force",
    `SIGKEY ${SIGN}`,
    `SIGKEY ${PRIMARY}`,
    `SETKEY ${ENCR}`,
    `SETHASH 8 ${H}`,
    "PKSIGN",
    "PKDECRYPT",
    "D (7:enc-val(3:rsa(1:a1:x)))",
    "D (enc-val(ecdh(s 1:%0A)(e 1:%25)))",
    "END",
    "CAN",
    "EXPORT_KEY x",
    "SETKEYDESC hello",
  ),
  fc.string({ maxLength: 30 }),
  fc.uint8Array({ maxLength: 30 }).map((u) => binary(u)),
);

const agentReply = fc.constantFrom(
  "OK\n",
  "ERR 1 nope\n",
  "D abc\nOK\n",
  "S PROGRESS x\n",
  `S KEYINFO ${PRIMARY} D - - - C - - -\n`,
  "# comment\n",
  "INQUIRE CIPHERTEXT\n",
  "INQUIRE PINENTRY_LAUNCHED 1 x\n",
  "INQUIRE NEWPASSWD\n",
  "garbage\n",
  "OK",
);

type Step = { client: string[]; split: number } | { agent: string } | { verdict: boolean };
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ client: fc.array(clientLine, { minLength: 1, maxLength: 3 }), split: fc.nat(40) }),
  fc.record({ agent: agentReply }),
  fc.record({ verdict: fc.boolean() }),
);

describe("split-gpg2 filter properties", () => {
  test("fuzz: only strict lines reach the agent; privileged ones only after an approval", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 25 }), (steps) => {
        const f = new AssuanFilter({
          lookupKey: (g) => KEYS.byGrip.get(g),
          listKeys: () => KEYS.primaries.flatMap((p) => [p.key, ...p.subkeys]),
        });
        let closed = false;
        let approvedPending = false;
        const check = (fx: FilterEffect[]) => {
          if (closed) expect(fx).toEqual([]);
          for (const e of fx) {
            if (e.kind === "agent") {
              checkAgentLine(e.data);
              const t = binary(e.data);
              if (t.startsWith("PKSIGN") || t.startsWith("PKDECRYPT")) {
                expect(approvedPending).toBe(true);
                approvedPending = false;
              }
            }
            if (e.kind === "close") closed = true;
          }
        };
        check(f.feedAgent(fromBinary("OK hello\n")));
        for (const s of steps) {
          if ("client" in s) {
            const bytes = fromBinary(s.client.map((l) => `${l}\n`).join(""));
            const cut = Math.min(s.split, bytes.length);
            check(f.feedClient(bytes.subarray(0, cut)));
            check(f.feedClient(bytes.subarray(cut)));
          } else if ("agent" in s) {
            check(f.feedAgent(fromBinary(s.agent)));
          } else if (f.awaiting === "confirm") {
            approvedPending = s.verdict;
            check(f.confirmResult(s.verdict));
          }
        }
      }),
      { numRuns: RUNS },
    );
  });
});
