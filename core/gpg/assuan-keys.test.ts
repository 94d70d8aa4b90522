/**
 * The Assuan lines that differ between GnuPG 2.2 and 2.4 (docs/split-gpg.md "GnuPG 2.2 and
 * 2.4"), through the pure filter: each test name says which gpg sends the line and which agent
 * answers it differently. Also that a keygrip the device does not serve is answered exactly as
 * an agent without it answers, and never reaches the agent.
 */
import { describe, expect, test } from "bun:test";
import { ENCR, LISTING, PRIMARY, SIGN } from "../../test/fixtures/gpg/listing.ts";
import {
  binary,
  dataLines,
  ERR_FILTERED_LINE,
  ERR_NO_SCDAEMON_LINE,
  ERR_NO_SECKEY_LINE,
  ERR_NOT_FOUND_LINE,
  ERR_TRUNCATED_LINE,
  fromBinary,
  unescapeData,
} from "./assuan.ts";
import { AssuanFilter, type FilterEffect } from "./assuan-filter.ts";
import { parseSecretKeyListing } from "./keyring.ts";

const KEYS = parseSecretKeyListing(LISTING);
/** A keygrip the agent may hold (another key) but the device's keyring does not list. */
const OTHER = "0123456789ABCDEF0123456789ABCDEF01234567";
const all = () => KEYS.primaries.flatMap((p) => [p.key, ...p.subkeys]);

function ready(allowPrimaryKeys = false): AssuanFilter {
  const f = new AssuanFilter({ lookupKey: (g) => KEYS.byGrip.get(g), listKeys: all, allowPrimaryKeys });
  f.feedAgent(fromBinary("OK Pleased to meet you\n"));
  return f;
}
const send = (f: AssuanFilter, s: string) => f.feedClient(fromBinary(s));
const of = (fx: FilterEffect[], kind: "client" | "agent") =>
  fx.flatMap((e) => (e.kind === kind ? [binary(e.data)] : []));
const sockets = (fx: FilterEffect[]) => fx.flatMap((e) => (e.kind === "agent" ? [e.socket] : []));
const grip = (hex: string) => Uint8Array.from(hex.match(/../g)!, (h) => Number.parseInt(h, 16));

describe("KEYINFO <keygrip> (gpg 2.4 sends it before signing and for -K; agent 2.2 forbids it restricted)", () => {
  test("a served subkey goes to the normal socket, which answers it on 2.2 and 2.4", () => {
    for (const g of [SIGN, ENCR]) {
      const f = ready();
      const fx = send(f, `KEYINFO ${g}\n`);
      expect(of(fx, "agent")).toEqual([`KEYINFO ${g}\n`]);
      expect(sockets(fx)).toEqual(["unrestricted"]);
      const answer = `S KEYINFO ${g} D - - - C - - -\n`;
      expect(of(f.feedAgent(fromBinary(`${answer}OK\n`)), "client")).toEqual([answer, "OK\n"]);
      expect(f.awaiting).toBe("client");
    }
  });

  test("the primary key, another key and a made-up keygrip: the agent's 'Not found', agent not asked", () => {
    const answers = new Set<string>();
    for (const g of [PRIMARY, OTHER, "F".repeat(40)]) {
      const f = ready();
      const fx = send(f, `KEYINFO ${g}\n`);
      expect(of(fx, "agent")).toEqual([]);
      answers.add(of(fx, "client").join(""));
      expect(f.awaiting).toBe("client");
    }
    expect([...answers]).toEqual([`${ERR_NOT_FOUND_LINE}\n`]);
    expect(ERR_NOT_FOUND_LINE).toBe("ERR 67108891 Not found <GPG Agent>");
  });

  test("with allowPrimaryKeys the primary is served too", () => {
    const f = ready(true);
    expect(of(send(f, `KEYINFO ${PRIMARY}\n`), "agent")).toEqual([`KEYINFO ${PRIMARY}\n`]);
  });

  test("KEYINFO --list: lines of keys not served are dropped", () => {
    const f = ready();
    const fx = send(f, "KEYINFO --list\n");
    expect(sockets(fx)).toEqual(["unrestricted"]);
    const agent = [PRIMARY, SIGN, OTHER, ENCR].map((g) => `S KEYINFO ${g} D - - - C - - -\n`);
    const out = of(f.feedAgent(fromBinary(`${agent.join("")}OK\n`)), "client");
    expect(out).toEqual([agent[1]!, agent[3]!, "OK\n"]);
  });
});

describe("HAVEKEY --list=1000 (gpg 2.4's -K fast path; agent 2.2: 'IPC parameter error')", () => {
  test("answered by the device in agent 2.4's format: served keygrips, 20 bytes each", () => {
    const f = ready();
    const fx = send(f, "HAVEKEY --list=1000\n");
    expect(of(fx, "agent")).toEqual([]);
    const lines = of(fx, "client");
    expect(lines.at(-1)).toBe("OK\n");
    const data = lines.slice(0, -1).map((l) => unescapeData(fromBinary(l.slice(2, -1))));
    const bytes = Uint8Array.from(data.flatMap((d) => [...d]));
    expect(bytes).toEqual(Uint8Array.from([...grip(SIGN), ...grip(ENCR)]));
  });

  test("past the limit: the first N, then 'Result truncated' (as agent 2.4)", () => {
    const fx = send(ready(), "HAVEKEY --list=1\n");
    expect(of(fx, "client")).toEqual([
      ...dataLines(grip(SIGN)).map((l) => `${l}\n`),
      `${ERR_TRUNCATED_LINE}\n`,
    ]);
  });

  test("no served key: no data, OK", () => {
    const f = new AssuanFilter({ lookupKey: () => undefined });
    f.feedAgent(fromBinary("OK\n"));
    expect(of(send(f, "HAVEKEY --list\n"), "client")).toEqual(["OK\n"]);
  });

  test("D lines escape %, CR and LF in upper-case hex and stay within the line limit", () => {
    expect(dataLines(Uint8Array.of(0x25, 0x0a, 0x0d, 0x41))).toEqual(["D %25%0A%0DA"]);
    const long = dataLines(new Uint8Array(3000).fill(0x25));
    for (const l of long) expect(l.length).toBeLessThanOrEqual(1002);
    expect(long.map((l) => l.slice(2)).join("")).toBe("%25".repeat(3000));
  });
});

describe("HAVEKEY <keygrips> (gpg 2.2 and 2.4)", () => {
  test("only served keygrips reach the agent", () => {
    const f = ready();
    expect(of(send(f, `HAVEKEY ${PRIMARY} ${OTHER} ${SIGN}\n`), "agent")).toEqual([`HAVEKEY ${SIGN}\n`]);
  });

  test("none served: the agent's 'No secret key', agent not asked", () => {
    const fx = send(ready(), `HAVEKEY ${PRIMARY} ${OTHER}\n`);
    expect(of(fx, "agent")).toEqual([]);
    expect(of(fx, "client")).toEqual([`${ERR_NO_SECKEY_LINE}\n`]);
  });
});

describe("SCD (gpg 2.2/2.4 SERIALNO before an operation, GETINFO version for --card-status)", () => {
  for (const line of ["SCD SERIALNO", "SCD SERIALNO openpgp", "SCD GETINFO version"]) {
    test(`${line}: an agent without a card daemon's answer, no violation`, () => {
      const f = ready();
      const fx = send(f, `${line}\n`);
      expect(of(fx, "client")).toEqual([`${ERR_NO_SCDAEMON_LINE}\n`]);
      expect(fx.some((e) => e.kind === "close")).toBe(false);
      expect(ERR_NO_SCDAEMON_LINE).toBe("ERR 67108983 No SmartCard daemon <GPG Agent>");
    });
  }

  for (const line of [
    "SCD LEARN --force",
    "SCD PASSWD OPENPGP.1",
    "SCD APDU 00A4",
    "SCD GETINFO app_list",
    "SCD",
  ]) {
    test(`${line}: still a violation`, () => {
      const fx = send(ready(), `${line}\n`);
      expect(of(fx, "client")).toEqual([`${ERR_FILTERED_LINE}\n`]);
      expect(fx.at(-1)).toMatchObject({
        kind: "close",
        reason: "filtered",
        violation: { reason: "bad-arguments" },
      });
    });
  }
});
