import { describe, expect, test } from "bun:test";
import { ENCR, LISTING, PRIMARY, SIGN } from "../../test/fixtures/gpg/listing.ts";
import { binary, ERR_CANCELED_LINE, ERR_FILTERED_LINE, fromBinary } from "./assuan.ts";
import { AssuanFilter, type FilterEffect } from "./assuan-filter.ts";
import { parseSecretKeyListing } from "./keyring.ts";

const KEYS = parseSecretKeyListing(LISTING);
const H64 = "F6E013966DF976A08459E2C2BA1229CDA79838F3078DD5820AF52EA64AD91270";

/** A filter past the greeting. */
function ready(allowPrimaryKeys = false): AssuanFilter {
  const f = new AssuanFilter({ lookupKey: (g) => KEYS.byGrip.get(g), allowPrimaryKeys });
  const fx = f.feedAgent(fromBinary("# comment\nOK Pleased to meet you, process 42\n"));
  expect(fx).toEqual([{ kind: "client", data: fromBinary("OK Pleased to meet you\n") }]);
  return f;
}

const text = (fx: FilterEffect[], kind: "client" | "agent") =>
  fx.flatMap((e) => (e.kind === kind ? [binary(e.data)] : []));
const send = (f: AssuanFilter, s: string) => f.feedClient(fromBinary(s));

/** Client line in, expect it forwarded as `agent` and answered by OK. */
function roundTrip(f: AssuanFilter, client: string, agent = client): void {
  const fx = send(f, `${client}\n`);
  expect(text(fx, "agent")).toEqual([`${agent}\n`]);
  expect(text(f.feedAgent(fromBinary("OK\n")), "client")).toEqual(["OK\n"]);
}

function expectFiltered(f: AssuanFilter, client: string | Uint8Array, code?: string): FilterEffect[] {
  const fx = typeof client === "string" ? send(f, client) : f.feedClient(client);
  expect(text(fx, "agent")).toEqual([]);
  expect(text(fx, "client")).toEqual([`${ERR_FILTERED_LINE}\n`]);
  const close = fx.at(-1);
  expect(close?.kind).toBe("close");
  if (close?.kind === "close") {
    expect(close.reason).toBe("filtered");
    if (code) expect(close.violation?.reason as string).toBe(code);
  }
  expect(f.awaiting).toBe("closed");
  return fx;
}

describe("split-gpg2 filter: allowed traffic", () => {
  test("the gpg 2.2 signing sequence", () => {
    const f = ready();
    roundTrip(f, "RESET");
    expect(text(send(f, "OPTION ttytype=xterm\n"), "client")).toEqual(["OK\n"]);
    roundTrip(f, "GETINFO restricted");
    let fx = send(f, "GETINFO version\n");
    expect(text(fx, "agent")).toEqual(["GETINFO version\n"]);
    expect(text(f.feedAgent(fromBinary("D 2.2.40\nOK\n")), "client")).toEqual(["D 2.2.40\n", "OK\n"]);
    expect(text(send(f, "OPTION allow-pinentry-notify\n"), "client")).toEqual(["OK\n"]);
    roundTrip(f, "OPTION agent-awareness=2.1.0");
    expect(text(send(f, "SCD SERIALNO\n"), "client")[0]).toStartWith("ERR 67108983 ");
    // Only the keys the device serves are asked about (never the primary).
    roundTrip(f, `HAVEKEY ${PRIMARY} ${SIGN} ${ENCR}`, `HAVEKEY ${SIGN} ${ENCR}`);
    fx = send(f, `SIGKEY ${SIGN}\n`);
    expect(text(fx, "agent")).toEqual([`SIGKEY ${SIGN}\n`]);
    fx = f.feedAgent(fromBinary("OK\n"));
    expect(text(fx, "client")).toEqual([]);
    const desc = text(fx, "agent");
    expect(desc[0]).toStartWith("SETKEYDESC UID:+T+<t@example.invalid>%0aFingerprint:+16513FB3");
    expect(text(f.feedAgent(fromBinary("OK\n")), "client")).toEqual(["OK\n"]);
    expect(text(send(f, "SETKEYDESC Please+enter+%22evil%22\n"), "client")).toEqual(["OK\n"]);
    roundTrip(f, `SETHASH 8 ${H64}`);
    fx = send(f, "PKSIGN\n");
    expect(fx).toHaveLength(1);
    const c = fx[0]!;
    expect(c.kind).toBe("confirm");
    if (c.kind === "confirm") {
      expect(c.request.operation).toBe("PKSIGN");
      expect(c.request.key.keygrip).toBe(SIGN);
      expect(c.request.hash).toEqual({ algo: 8, name: "sha256", hex: H64 });
    }
    expect(f.awaiting).toBe("confirm");
    fx = f.confirmResult(true);
    expect(text(fx, "agent")).toEqual(["PKSIGN\n"]);
    fx = f.feedAgent(fromBinary("D (7:sig-val)\nOK\n"));
    expect(text(fx, "client")).toEqual(["D (7:sig-val)\n", "OK\n"]);
    expect(fx.find((e) => e.kind === "result")).toMatchObject({ ok: true });
    roundTrip(f, "BYE");
    expect(f.awaiting).toBe("closed");
  });

  test("decrypt: one D line, re-serialised, then END", () => {
    const f = ready();
    send(f, `SETKEY ${ENCR}\n`);
    f.feedAgent(fromBinary("OK\n"));
    f.feedAgent(fromBinary("OK\n"));
    expect(send(f, "PKDECRYPT\n")[0]?.kind).toBe("confirm");
    expect(text(f.confirmResult(true), "agent")).toEqual(["PKDECRYPT\n"]);
    let fx = f.feedAgent(fromBinary("S INQUIRE_MAXLEN 4096\nINQUIRE CIPHERTEXT\n"));
    expect(text(fx, "client")).toEqual(["S INQUIRE_MAXLEN 4096\n", "INQUIRE CIPHERTEXT\n"]);
    fx = send(f, "D (7:enc-val(4:ecdh(1:s3:a%0Ab)(e 2:%25x)))\nEND\n");
    expect(text(fx, "agent")).toEqual(["D (7:enc-val(4:ecdh(1:s3:a%0ab)(1:e2:%25x)))\n", "END\n"]);
    fx = f.feedAgent(fromBinary("D (5:value1:k)\nOK\n"));
    expect(text(fx, "client")).toEqual(["D (5:value1:k)\n", "OK\n"]);
  });

  test("a denial answers 'cancelled' and ends the connection; nothing reaches the agent", () => {
    const f = ready();
    send(f, `SIGKEY ${SIGN}\n`);
    f.feedAgent(fromBinary("OK\n"));
    f.feedAgent(fromBinary("OK\n"));
    send(f, `SETHASH 8 ${H64}\n`);
    f.feedAgent(fromBinary("OK\n"));
    send(f, "PKSIGN\n");
    const fx = f.confirmResult(false);
    expect(text(fx, "agent")).toEqual([]);
    expect(text(fx, "client")).toEqual([`${ERR_CANCELED_LINE}\n`]);
    expect(fx.at(-1)).toMatchObject({ kind: "close", reason: "denied" });
  });

  test("pipelined lines wait for their turn", () => {
    const f = ready();
    const fx = send(f, "NOP\nRESET\nNOP\n");
    expect(text(fx, "client")).toEqual(["OK\n"]);
    expect(text(fx, "agent")).toEqual(["RESET\n"]);
    const fx2 = f.feedAgent(fromBinary("OK\n"));
    expect(text(fx2, "client")).toEqual(["OK\n", "OK\n"]);
  });

  test("KEYINFO --list goes to the unrestricted socket", () => {
    const f = ready();
    const fx = send(f, "KEYINFO --list\n");
    expect(fx).toEqual([{ kind: "agent", data: fromBinary("KEYINFO --list\n"), socket: "unrestricted" }]);
    expect(f.awaiting).toBe("agent-unrestricted");
  });

  test("fake replies", () => {
    const f = ready();
    for (const o of ["ttyname=/dev/pts/1", "display=:0", "lc-ctype=C", "putenv=A=B"]) {
      expect(text(send(f, `OPTION ${o}\n`), "client")).toEqual(["OK\n"]);
    }
    expect(text(send(f, "OPTION pinentry-mode=ask\n"), "client")).toEqual(["OK\n"]);
    expect(text(send(f, "OPTION pinentry-mode=loopback\n"), "client")[0]).toStartWith("ERR 67108924 ");
    expect(text(send(f, "AGENT_ID\n"), "client")[0]).toStartWith("ERR 67109139 ");
  });
});

describe("split-gpg2 filter: refusals (attack class f)", () => {
  const long = `NOP ${"A".repeat(1000)}`;
  const cases: [string, string | Uint8Array, string][] = [
    ["line over 1002 bytes", `${long}\n`, "line-too-long"],
    ["1003 bytes without LF", "A".repeat(1003), "line-too-long"],
    ["EXPORT_KEY", `EXPORT_KEY ${SIGN}\n`, "command-not-allowed"],
    ["IMPORT_KEY", "IMPORT_KEY\n", "command-not-allowed"],
    ["GET_PASSPHRASE", "GET_PASSPHRASE x\n", "command-not-allowed"],
    ["PRESET_PASSPHRASE", "PRESET_PASSPHRASE x\n", "command-not-allowed"],
    ["SCD LEARN", "SCD LEARN --force\n", "bad-arguments"],
    ["KILLAGENT", "KILLAGENT\n", "command-not-allowed"],
    ["KEYTOCARD", "KEYTOCARD\n", "command-not-allowed"],
    ["DELETE_KEY", `DELETE_KEY ${SIGN}\n`, "command-not-allowed"],
    ["PASSWD", `PASSWD ${SIGN}\n`, "command-not-allowed"],
    ["GENKEY", "GENKEY\n", "command-not-allowed"],
    ["READKEY", `READKEY ${SIGN}\n`, "command-not-allowed"],
    ["lower-case command", "reset\n", "command-not-allowed"],
    ["CR in a command", "RESET\r\n", "command-not-allowed"],
    ["NUL in a command", "RESET\0\n", "command-not-allowed"],
    ["RESET with args", "RESET x\n", "bad-arguments"],
    ["RESET with a trailing space", "RESET \n", "bad-arguments"],
    ["OPTION xyz", "OPTION foo=bar\n", "option-not-allowed"],
    [
      "OPTION xauthority (filtered by split-gpg2 1.1.11)",
      "OPTION xauthority=/home/user/.Xauthority\n",
      "option-not-allowed",
    ],
    ["OPTION xauthority without a value", "OPTION xauthority\n", "option-not-allowed"],
    ["OPTION empty", "OPTION \n", "bad-arguments"],
    ["OPTION agent-awareness other", "OPTION agent-awareness=9.9\n", "option-not-allowed"],
    ["OPTION ttyname with a space", "OPTION ttyname /dev/pts/0\n", "option-not-allowed"],
    ["lower-case keygrip", `SIGKEY ${SIGN.toLowerCase()}\n`, "bad-keygrip"],
    ["short keygrip", `HAVEKEY ${SIGN.slice(1)}\n`, "bad-keygrip"],
    ["double space", `HAVEKEY ${SIGN}  ${ENCR}\n`, "bad-keygrip"],
    ["201 keygrips", `HAVEKEY ${Array(201).fill(SIGN).join(" ")}\n`, "line-too-long"],
    ["%0A in a keygrip", `SIGKEY ${SIGN.slice(3)}%0A\n`, "bad-keygrip"],
    ["HAVEKEY --list=0", "HAVEKEY --list=0\n", "bad-arguments"],
    ["HAVEKEY --list=1001", "HAVEKEY --list=1001\n", "bad-arguments"],
    ["HAVEKEY --listx", "HAVEKEY --listx\n", "bad-arguments"],
    ["KEYINFO two", `KEYINFO ${SIGN} ${ENCR}\n`, "bad-arguments"],
    ["SIGKEY --list", "SIGKEY --list\n", "bad-keygrip"],
    ["SIGKEY unknown", `SIGKEY ${"A".repeat(40)}\n`, "unknown-key"],
    ["SIGKEY primary (certify)", `SIGKEY ${PRIMARY}\n`, "primary-key"],
    ["SETKEY primary", `SETKEY ${PRIMARY}\n`, "primary-key"],
    ["SETHASH unknown algo", `SETHASH 7 ${H64}\n`, "bad-hash"],
    ["SETHASH leading zero", `SETHASH 08 ${H64}\n`, "bad-hash"],
    ["SETHASH short", `SETHASH 8 ${H64.slice(2)}\n`, "bad-hash"],
    ["SETHASH lower-case", `SETHASH 8 ${H64.toLowerCase()}\n`, "bad-hash"],
    ["SETHASH --hash=", `SETHASH --hash=sha256 ${H64}\n`, "bad-hash"],
    ["PKSIGN before SIGKEY", "PKSIGN\n", "no-key-set"],
    ["PKSIGN bad nonce", "PKSIGN -- 12\n", "bad-nonce"],
    ["PKSIGN nonce lower", `PKSIGN -- ${"a".repeat(24)}\n`, "bad-nonce"],
    ["PKDECRYPT args", "PKDECRYPT x\n", "bad-arguments"],
    ["GETINFO pid", "GETINFO pid\n", "bad-arguments"],
    ["END outside an inquiry", "END\n", "command-not-allowed"],
    ["D outside an inquiry", "D (x)\n", "command-not-allowed"],
  ];
  for (const [name, input, code] of cases) {
    test(name, () => {
      expectFiltered(ready(), input, code);
    });
  }

  test("PKSIGN twice with one SETHASH: the second is filtered (one approval, one digest)", () => {
    const f = ready();
    send(f, `SIGKEY ${SIGN}\n`);
    f.feedAgent(fromBinary("OK\n"));
    f.feedAgent(fromBinary("OK\n"));
    send(f, `SETHASH 8 ${H64}\n`);
    f.feedAgent(fromBinary("OK\n"));
    send(f, "PKSIGN\n");
    f.confirmResult(true);
    f.feedAgent(fromBinary("D x\nOK\n"));
    expectFiltered(f, "PKSIGN\n", "no-hash-set");
  });

  test("the primary key can be served when allowed", () => {
    const f = ready(true);
    expect(text(send(f, `SIGKEY ${PRIMARY}\n`), "agent")).toEqual([`SIGKEY ${PRIMARY}\n`]);
  });

  const inquiries: [string, string, string][] = [
    ["END without D", "END\n", "inquire-no-data"],
    ["two D lines", "D (enc-val(rsa(a 1:x)))\nD (enc-val(rsa(a 1:x)))\n", "inquire-second-data"],
    ["CAN", "CAN\n", "inquire-not-allowed"],
    ["a command mid-inquiry", "RESET\n", "inquire-not-allowed"],
    ["END with args", "D (enc-val(rsa(a 1:x)))\nEND x\n", "bad-arguments"],
    ["not an enc-val", "D (sig-val(rsa(a 1:x)))\n", "bad-ciphertext"],
    ["wrong MPIs", "D (enc-val(ecdh(s 1:x)))\n", "bad-ciphertext"],
    ["trailing garbage", "D (enc-val(rsa(a 1:x)))x\n", "bad-ciphertext"],
    ["depth 21", `D ${"(".repeat(21)}${")".repeat(21)}\n`, "bad-ciphertext"],
  ];
  for (const [name, input, code] of inquiries) {
    test(`CIPHERTEXT inquiry: ${name}`, () => {
      const f = ready();
      send(f, `SETKEY ${ENCR}\n`);
      f.feedAgent(fromBinary("OK\n"));
      f.feedAgent(fromBinary("OK\n"));
      send(f, "PKDECRYPT\n");
      f.confirmResult(true);
      f.feedAgent(fromBinary("INQUIRE CIPHERTEXT\n"));
      const fx = send(f, input);
      expect(fx.at(-1)).toMatchObject({ kind: "close", reason: "filtered" });
      expect(fx.find((e) => e.kind === "close")).toMatchObject({ violation: { reason: code } });
      expect(fx.find((e) => e.kind === "result")).toMatchObject({ ok: false });
    });
  }

  test("an inquiry the command does not expect is filtered", () => {
    const f = ready();
    send(f, "GETINFO version\n");
    const fx = f.feedAgent(fromBinary("INQUIRE NEWPASSWD\n"));
    expect(text(fx, "client")).toEqual([`${ERR_FILTERED_LINE}\n`]);
  });

  test("an agent that says something odd ends the connection", () => {
    const f = ready();
    send(f, "GETINFO version\n");
    expect(f.feedAgent(fromBinary("HELLO\n")).at(-1)).toMatchObject({ reason: "agent-protocol" });
    const g = new AssuanFilter({ lookupKey: () => undefined });
    expect(g.feedAgent(fromBinary("ERR 1\n")).at(-1)).toMatchObject({ reason: "agent-protocol" });
  });

  test("nothing happens after close", () => {
    const f = ready();
    expectFiltered(f, "KILLAGENT\n");
    expect(send(f, "NOP\n")).toEqual([]);
    expect(f.feedAgent(fromBinary("OK\n"))).toEqual([]);
  });
});
