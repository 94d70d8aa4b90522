/**
 * split-gpg v1 refusals, table-driven from the attack classes of reference/split-gpg.md §3:
 * (a) parser differentials, (b) dangerous options, (c) fd abuse, (d) framing. A refused request
 * never starts gpg (a recording wrapper shows no invocation), gets no frame at all, and the
 * service exits 1; a framing fault after the header kills gpg and ends without an exit frame.
 * Export-secret is refused by the device itself. Where a hostile word is accepted as a value,
 * the rebuilt command line keeps it a value (`--name=value`, or after "--").
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { serveGpg1 } from "../../agent/services/gpg/gpg1-service.ts";
import { encodeFrame, encodeHeader } from "../../core/gpg/v1-wire.ts";
import {
  type Confirming,
  cleanup,
  confirming,
  type Device,
  killAgents,
  makeDevice,
  quietLog,
  recordingGpg,
} from "../fixtures/gpg/env.ts";
import { type Serve1, v1Call } from "../fixtures/gpg/v1-client.ts";

let device: Device;
let c: Confirming;
let serve: Serve1;
let log: string;
const enc = (s: string) => new TextEncoder().encode(s);
const invocations = () => readFileSync(log, "utf-8");

beforeAll(async () => {
  device = await makeDevice();
  c = await confirming("approve");
  const rec = recordingGpg(device.dir);
  log = rec.log;
  serve = (io) =>
    serveGpg1(io, {
      source: "work",
      gnupgHome: device.served,
      confirm: c.confirm,
      audit: c.audit,
      gpg: rec.path,
      log: quietLog,
    });
}, 60_000);

beforeEach(() => writeFileSync(log, ""));

afterAll(async () => {
  await c?.close();
  if (!device) return;
  await killAgents(device.served, device.primary);
  cleanup(device.dir);
});

async function expectRefused(args: string[] | { header: Uint8Array; closeAfter?: boolean }, reason?: string) {
  const r = await v1Call(serve, Array.isArray(args) ? { args } : args);
  expect(r.exit).toBeNull();
  expect(r.outputBytes.every((n) => n === 0)).toBe(true);
  expect(r.serviceStatus).toBe(1);
  expect(r.serviceStderr).toStartWith("qubes-air: qubes.Gpg: ");
  if (reason) expect(r.serviceStderr).toContain(reason);
  expect(invocations()).toBe("");
}

const REFUSED: [string, string[], string?][] = [
  // (a) parser differentials (QSB-071 and friends)
  ["--export-ssh-key takes no argument", ["--export-ssh-key", "--export-secret-keys"], "unrecognized"],
  ["--with-colons is not -k", ["--with-colons", "--export-secret-keys"], "unrecognized"],
  ["--s2k-mode without its argument", ["--s2k-mode"], "requires an argument"],
  ["abbreviation --export-secret-k", ["--export-secret-k"], "unrecognized"],
  ["abbreviation --armo", ["--armo"], "abbreviated"],
  ["abbreviation --rec", ["--rec", "x", "-e"], "abbreviated"],
  ["--armor=yes (no argument allowed)", ["--armor=yes"], "does not take an argument"],
  ["-v is not a short option", ["-v"], "invalid short option"],
  ["bundle with an unknown letter", ["-sax"], "invalid short option"],
  ["no permutation: option after '-'", ["-", "--export-secret-keys"], 'must not start with "-"'],
  ["no permutation: option after a user ID", ["-k", "me", "--export-secret-keys"], 'must not start with "-"'],
  ["a file name on the server", ["-s", "/etc/shadow"], "only a lone '-'"],
  ["--default-recipient is not --default-recipient-self", ["--default-recipient", "x"], "forbidden option"],
  ["--display is not --display-charset", ["--display", "x"], "forbidden option"],
  ["--charset", ["--charset", "utf-8"], "forbidden option"],
  ["conflicting commands", ["-k", "-s"], "conflicting commands"],
  ["list option 1+1", ["--list-options", "show-sig-subpackets=1+1", "-k"], "invalid character"],
  ["list option show-keyring", ["--list-options", "show-keyring", "-k"], "forbidden list option"],
  ["list option SHOW-KEYRING (case)", ["--list-options", "SHOW-KEYRING", "-k"], "forbidden list option"],
  ["list option unknown", ["--list-options", "show-everything", "-k"], "unknown list option"],
  ["export option export-dane", ["--export-options", "export-dane", "--export"], "forbidden list option"],
  ["no- with an argument", ["--list-options", "no-show-sig-subpackets=2", "-k"], "does not take an argument"],
  // (b) dangerous options
  ...[
    ["--export-secret-keys"],
    ["--export-secret-subkeys"],
    ["--homedir", "/"],
    ["--options", "/tmp/x"],
    ["--load-extension", "x"],
    ["--photo-viewer", "sh -c id"],
    ["--exec-path", "/tmp"],
    ["--passphrase-fd", "0"],
    ["--passphrase", "x"],
    ["--pinentry-mode", "loopback"],
    ["--log-file", "/tmp/x"],
    ["--keyserver", "hkp://x"],
    ["--auto-key-locate", "wkd"],
    ["--auto-key-retrieve"],
    ["--edit-key", "x"],
    ["--delete-secret-keys", "x"],
    ["--gen-key"],
    ["--quick-gen-key", "x"],
    ["--import"],
    ["--keyring", "/tmp/k"],
  ].map((a): [string, string[], string] => [a.join(" "), a, "unrecognized"]),
  ["--command-fd", ["--command-fd", "0"], "forbidden option"],
  ["--no-tty (recognised, refused)", ["--no-tty"], "forbidden option"],
  // (c) fd abuse
  ["status fd 0 (input)", ["--status-fd", "0"], "both reading and writing"],
  ["leading zero", ["--status-fd", "01"], "leading zeroes"],
  ["fd 1024", ["--status-fd", "1024"], "too big"],
  ["hex fd", ["--status-fd", "0x3"], "decimal"],
  ["negative fd", ["--logger-fd", "-1"], "decimal"],
  ["empty fd", ["--attribute-fd="], "decimal"],
  ["status fd twice", ["--status-fd", "3", "--status-fd", "4"], "only be specified once"],
  ["same fd both ways", ["--status-fd", "5", "--verify", "/dev/fd/5", "-"], "both reading and writing"],
  ["--verify with a path", ["--verify", "/etc/passwd", "-"], "/dev/fd/N"],
  ["--verify fd below 3", ["--verify", "/dev/fd/2", "-"], "3 or more"],
  ["--verify fd with leading zero", ["--verify", "/dev/fd/05", "-"], "leading zeroes"],
  ["-o to a file", ["-o", "/tmp/out", "-s"], "only '-'"],
  ["--output= empty", ["--output=", "-s"], "only '-'"],
  // (d) bytes in the header
  ["control character", ["--comment", "a\u0001b", "-s"], "printable UTF-8"],
  ["DEL", ["--comment", "a\u007fb", "-s"], "printable UTF-8"],
];

describe("v1 refusals: the request never reaches gpg", () => {
  for (const [name, args, reason] of REFUSED) {
    test(name, () => expectRefused(args, reason));
  }

  test("invalid UTF-8", async () => {
    const h = encodeHeader([enc("--comment"), new Uint8Array([0xff, 0x41]), enc("-s")]);
    await expectRefused({ header: h }, "printable UTF-8");
  });

  test("len >= 1024", async () => {
    const h = encodeHeader([enc("-k")]);
    new DataView(h.buffer).setUint32(0, 1024, true);
    await expectRefused({ header: h }, "malformed");
  });

  test("missing final NUL", async () => {
    const h = encodeHeader([enc("-k")]);
    h[4 + 3] = 0x41;
    await expectRefused({ header: h }, "malformed");
  });

  test("bytes before the first NUL", async () => {
    const h = encodeHeader([enc("-k")]);
    h[4] = 0x41;
    await expectRefused({ header: h }, "malformed");
  });

  test("a short header (EOF after 100 bytes)", async () => {
    await expectRefused({ header: encodeHeader([enc("-k")]).slice(0, 100), closeAfter: true }, "incomplete");
  });
});

describe("v1: hostile words accepted only as values", () => {
  test("--s2k-mode --export-secret-keys: the second word is s2k-mode's value", async () => {
    const r = await v1Call(serve, { args: ["--s2k-mode", "--export-secret-keys", "-k"] });
    expect(invocations()).toContain("--s2k-mode=--export-secret-keys --list-keys --");
    expect(r.outputs.join("")).not.toContain("PRIVATE KEY");
  });

  test("a user ID after -- stays a user ID", async () => {
    const r = await v1Call(serve, { args: ["-k", "--", "--export-secret-keys"] });
    expect(invocations().trim().split("\n").at(-1)).toEndWith("--list-keys -- --export-secret-keys");
    expect(r.exit).not.toBe(0);
    expect(r.outputs.join("")).not.toContain("PRIVATE KEY");
  });

  test("bundles: -ao- and -sau KEY", async () => {
    const r = await v1Call(serve, { args: ["-sau", device.fingerprint, "-ao-"], stdin: enc("x") });
    expect(r.exit).toBe(0);
    expect(invocations()).toContain(
      `--sign --armor --local-user=${device.fingerprint} --armor --output=- --`,
    );
  });

  test("C1 controls pass as upstream passes them (well-formed UTF-8), as one value", async () => {
    const r = await v1Call(serve, { args: ["--comment", "a\u0085b\u009b2J", "-sa"], stdin: enc("x") });
    expect(r.exit).toBe(0);
    expect(invocations()).toContain("--comment=a\u0085b\u009b2J --sign --armor --");
  });

  test("list options are re-emitted canonically", async () => {
    await v1Call(serve, {
      args: ["--list-options", ' Show-Usage  no-show-keyring,show-sig-subpackets="+2 3"', "-k"],
    });
    expect(invocations()).toContain('--list-options=show-usage,no-show-keyring,show-sig-subpackets="2,3" ');
  });
});

describe("v1 framing faults after the header (d)", () => {
  const faults: [string, Uint8Array][] = [
    [
      "frame len > 4096",
      (() => {
        const f = new Uint8Array(8);
        new DataView(f.buffer).setUint32(4, 4097, true);
        return f;
      })(),
    ],
    ["fd index out of range", encodeFrame(1, enc("x"))],
    [
      "negative fd from the client",
      (() => {
        const f = new Uint8Array(8);
        new DataView(f.buffer).setInt32(0, -1, true);
        return f;
      })(),
    ],
    ["EOF mid-frame", encodeFrame(0, enc("hello")).slice(0, 10)],
  ];
  for (const [name, raw] of faults) {
    test(name, async () => {
      const r = await v1Call(serve, { args: ["--store"], raw, closeAfter: true });
      expect(r.exit).toBeNull();
      expect(r.serviceStatus).toBe(1);
      expect(r.outputBytes[0]).toBe(0);
    });
  }

  test("a header split into many writes still works", async () => {
    const r = await v1Call(serve, { args: ["--version"], headerPieces: [1, 3, 500, 200] });
    expect(r.exit).toBe(0);
    expect(r.outputs[0]).toContain("gpg (GnuPG)");
  });
});
