/**
 * split-gpg2 refusals against the real gpg-agent, attack class (f) Assuan injection and the
 * Assuan side of (e) and (g): each hostile session gets exactly `ERR 67109888 Command filtered
 * by split-gpg2.` and the connection ends, and a recording proxy shows that nothing of it
 * reached gpg-agent. Export-secret through stock gpg is refused by the device; certifying with
 * the primary key is impossible even when the device home holds it. Termination: BYE, EOF,
 * agent death.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { loadKeyring } from "../../agent/services/gpg/gpg-tools.ts";
import { serveGpg2 } from "../../agent/services/gpg/gpg2-service.ts";
import { ERR_FILTERED_LINE } from "../../core/gpg/assuan.ts";
import {
  type Confirming,
  cleanup,
  confirming,
  type Device,
  gpg,
  killAgents,
  makeDevice,
  quietLog,
} from "../fixtures/gpg/env.ts";
import { nullSink } from "../fixtures/gpg/sockets.ts";
import { assuanSession, gpg2Stack, type Stack } from "../fixtures/gpg/stack.ts";

let device: Device;
let other: Device;
let c: Confirming;
let stack: Stack;
let S: string; // signing subkey grip
let E: string; // encryption subkey grip
let P: string; // primary grip
const H = "A".repeat(64);
const FILTERED = `${ERR_FILTERED_LINE}\n`;

beforeAll(async () => {
  [device, other] = await Promise.all([makeDevice(), makeDevice("Other <other@example.invalid>")]);
  c = await confirming("approve");
  stack = await gpg2Stack(device, c, { extraPublic: [other.publicKey] });
  const k = (await loadKeyring(device.served)).primaries[0]!;
  P = k.key.keygrip;
  S = k.subkeys.find((x) => x.capabilities.includes("s"))!.keygrip;
  E = k.subkeys.find((x) => x.capabilities.includes("e"))!.keygrip;
}, 60_000);

afterAll(async () => {
  await c?.close();
  await stack?.close();
  if (!device) return;
  await killAgents(device.served, device.primary, other.served, other.primary);
  cleanup(device.dir, other.dir);
});

/** Runs a hostile session; returns what the client got and what reached the agent meanwhile. */
async function session(script: string | Uint8Array, eof = false) {
  const before = stack.spy.sent().length;
  const got = await assuanSession(stack.socket, script, { eof });
  await stack.served.settled();
  return { got, reached: stack.spy.sent().slice(before) };
}

describe("(f) refused as the first command: nothing reaches gpg-agent", () => {
  const cases: [string, string | (() => string)][] = [
    ["a line over 1002 bytes", `NOP ${"x".repeat(1000)}\n`],
    ["%0A in an argument", `HAVEKEY ${"A".repeat(37)}%0A\n`],
    ["CR at the end", "RESET\r\n"],
    ["NUL inside", "GETINFO version\0\n"],
    ...[
      "EXPORT_KEY",
      "IMPORT_KEY",
      "GET_PASSPHRASE x",
      "PRESET_PASSPHRASE x",
      "KILLAGENT",
      "KEYTOCARD",
      "PASSWD",
    ].map((cmd): [string, () => string] => [cmd, () => `${cmd} ${S}\n`]),
    ["DELETE_KEY", () => `DELETE_KEY ${S}\n`],
    ["SCD LEARN", "SCD LEARN --force\n"],
    ["GENKEY", "GENKEY\n"],
    ["KEYWRAP_KEY --export", "KEYWRAP_KEY --export\n"],
    ["END outside an inquiry", "END\n"],
    ["malformed keygrip", "SIGKEY 1234\n"],
    ["201 keygrips", () => `HAVEKEY ${Array(201).fill(S).join(" ")}\n`],
    ["unknown keygrip", `SIGKEY ${"B".repeat(40)}\n`],
    ["primary keygrip (certify)", () => `SIGKEY ${P}\n`],
    ["PKSIGN without SIGKEY", "PKSIGN\n"],
    ["OPTION other", "OPTION log-file=/tmp/x\n"],
  ];
  for (const [name, script] of cases) {
    test(name, async () => {
      const r = await session(typeof script === "string" ? script : script());
      expect(r.got).toEndWith(FILTERED);
      expect(r.got.split("\n").filter((l) => l.startsWith("ERR"))).toHaveLength(1);
      expect(r.reached).toBe("");
    });
  }

  test("a line without LF, then EOF: nothing forwarded", async () => {
    const r = await session("RESET", true);
    expect(r.reached).toBe("");
  });
});

describe("(f) refused later in a session", () => {
  test("pipelined: NOP is answered, KILLAGENT filtered, the rest dropped", async () => {
    const r = await session("NOP\nKILLAGENT\nGETINFO version\n");
    expect(r.got).toEndWith(`OK\n${FILTERED}`);
    expect(r.reached).toBe("");
  });

  test("malformed hash and nonce after a good SIGKEY", async () => {
    for (const bad of [`SETHASH 8 ${H.slice(1)}\n`, `SETHASH 8 ${H.toLowerCase()}\n`, "PKSIGN -- 1234\n"]) {
      const r = await session(`SIGKEY ${S}\n${bad}`);
      expect(r.got).toEndWith(FILTERED);
      expect(r.reached).toStartWith(`SIGKEY ${S}\nSETKEYDESC `);
      expect(r.reached).not.toContain("SETHASH");
      expect(r.reached).not.toContain("PKSIGN");
    }
  });

  const inquiry: [string, string, string][] = [
    ["a command mid-inquiry", "RESET\n", "RESET"],
    ["END without D", "END\n", "END"],
    [
      "two D lines",
      "D (7:enc-val(4:ecdh(1:s1:x)(1:e1:y)))\nD (7:enc-val(4:ecdh(1:s1:x)(1:e1:y)))\n",
      "(1:y)))\nD",
    ],
    ["CAN", "CAN\n", "CAN"],
    ["sexp depth 21", `D ${"(".repeat(21)}${")".repeat(21)}\n`, "(((("],
    ["not an enc-val", "D (7:sig-val(3:rsa(1:a1:x)))\n", "sig-val"],
  ];
  for (const [name, lines, marker] of inquiry) {
    test(`CIPHERTEXT inquiry: ${name}`, async () => {
      const r = await session(`SETKEY ${E}\nPKDECRYPT\n${lines}`);
      expect(r.got).toContain("INQUIRE CIPHERTEXT");
      expect(r.got).toEndWith(FILTERED);
      expect(r.reached).toContain("PKDECRYPT\n");
      expect(r.reached.split("PKDECRYPT\n")[1]).not.toContain(marker);
    });
  }
});

describe("(g) consent", () => {
  test("one approval signs one digest: a second PKSIGN is filtered", async () => {
    const waits = c.input.waits;
    const r = await session(`SIGKEY ${S}\nSETHASH 8 ${H}\nPKSIGN\nPKSIGN\n`);
    expect(r.got).toMatch(/D \(7:sig-val/);
    expect(r.got).toEndWith(FILTERED);
    expect(r.reached.match(/PKSIGN/g)).toHaveLength(1);
    expect(c.input.waits).toBe(waits + 1);
  });

  test("the client's SETKEYDESC is never shown: the device writes its own", async () => {
    const r = await session(`SIGKEY ${S}\nSETKEYDESC Trust+me:+sign+this%0A\nBYE\n`);
    expect(r.reached).not.toContain("Trust");
    expect(r.reached).toContain("SETKEYDESC UID:+Device+Test+<device@example.invalid>%0aFingerprint:+");
  });

  test("export-secret through stock gpg is refused by the device", async () => {
    const before = stack.spy.sent().length;
    const r = await gpg(stack.client, ["--armor", "--export-secret-keys", device.fingerprint]);
    expect(r.out).not.toContain("PRIVATE KEY");
    const reached = stack.spy.sent().slice(before);
    expect(reached).not.toContain("EXPORT_KEY");
    expect(reached).not.toContain("KEYWRAP_KEY");
  });

  test("certifying with the primary key is impossible, even if the device home holds it", async () => {
    const full = await gpg2Stack(device, c, { home: device.primary, extraPublic: [other.publicKey] });
    try {
      const r = await gpg(full.client, ["--yes", "--quick-sign-key", other.fingerprint]);
      expect(r.status).not.toBe(0);
      expect(full.spy.sent()).not.toContain(`SIGKEY ${P}`);
      expect(full.spy.sent()).not.toContain("PKSIGN");
      const r2 = await gpg(stack.client, ["--yes", "--quick-sign-key", other.fingerprint]);
      expect(r2.status).not.toBe(0);
    } finally {
      await full.close();
    }
  });
});

describe("allowed oddities", () => {
  test("HAVEKEY --list is answered by the device (agent 2.4's format); nothing reaches the agent", async () => {
    const r = await session("HAVEKEY --list=5\nBYE\n");
    expect(r.got).not.toContain("Command filtered");
    expect(r.got).toMatch(/\nOK\nOK closing connection\n$/);
    expect(r.reached).toBe("BYE\n");
  });

  test("card queries get the no-scdaemon answer and the session goes on; no violation is logged", async () => {
    const filteredRecords = () =>
      readFileSync(c.auditPath, "utf-8")
        .split("\n")
        .filter((l) => l.includes('"filtered"'));
    const before = filteredRecords().length;
    const r = await session("SCD GETINFO version\nSCD SERIALNO openpgp\nBYE\n");
    expect(filteredRecords().length).toBe(before);
    // A card command that is not a query still is a violation, and is audited.
    expect((await session("SCD LEARN --force\n")).got).toContain("Command filtered");
    expect(filteredRecords().length).toBe(before + 1);
    expect(r.got).toBe(
      "OK Pleased to meet you\n" +
        "ERR 67108983 No SmartCard daemon <GPG Agent>\n".repeat(2) +
        "OK closing connection\n",
    );
    expect(r.reached).toBe("BYE\n");
  });
});

describe("termination", () => {
  test("BYE: the agent's OK, then the connection ends", async () => {
    const r = await session("BYE\n");
    expect(r.got).toMatch(/^OK Pleased to meet you\nOK closing connection\n$/);
  });

  test("EOF from the client ends the session with status 0", async () => {
    const n = stack.served.statuses.length;
    await session("", true);
    expect(stack.served.statuses.slice(n)).toEqual([0]);
  });

  test("agent death ends the connection", async () => {
    const { capture } = await import("../../agent/services/gpg/gpg-tools.ts");
    const { memoryPair } = await import("../../transport/memory.ts");
    const [cl, sv] = memoryPair();
    const done = serveGpg2(
      { stdin: sv, stdout: sv, stderr: nullSink },
      { source: "work", gnupgHome: other.served, confirm: c.confirm, audit: c.audit, log: quietLog },
    );
    const greeting = await cl.read();
    expect(new TextDecoder().decode(greeting!)).toStartWith("OK");
    await capture(["gpgconf", "--homedir", other.served, "--kill", "gpg-agent"]);
    await cl.write(new TextEncoder().encode("GETINFO version\n"));
    expect(await done).toBe(1);
    cl.close();
  });
});
