import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ProtocolError } from "../errors.ts";
import { buildGpgArgv, SAFE_PREFIX, secretUse, signerSpecs } from "./v1-argv.ts";
import {
  isPrintableUtf8,
  parseV1Args,
  signatureHashIsSha2,
  V1OptionError,
  type V1OptionReason,
  type V1Request,
} from "./v1-options.ts";
import { COMMANDS, LONG_OPTIONS, SHORT_OPTION_STRING, SHORT_OPTIONS } from "./v1-table.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const enc = (s: string) => new TextEncoder().encode(s);
const parse = (...a: string[]) => parseV1Args(a.map(enc));
const refused =
  (...a: string[]) =>
  () =>
    parse(...a);

describe("v1 tables (reference §1)", () => {
  test("96 allowed long names, 17 recognised-but-refused", () => {
    const all = [...LONG_OPTIONS.values()];
    expect(all.filter((o) => o.allowed)).toHaveLength(96);
    expect(
      all
        .filter((o) => !o.allowed)
        .map((o) => o.name)
        .sort(),
    ).toEqual(
      [
        "cert-digest-algo",
        "charset",
        "cipher-algo",
        "command-fd",
        "default-recipient",
        "disable-cipher-algo",
        "disable-mdc",
        "disable-pubkey-algo",
        "display",
        "display-charset",
        "force-mdc",
        "force-v3-sigs",
        "force-v4-certs",
        "no-sk-comments",
        "no-tty",
        "use-agent",
        "utf8-strings",
      ].sort(),
    );
  });

  test("the short option string", () => {
    const rebuilt = [...SHORT_OPTIONS].map(([c, s]) => c + (s.hasArg ? ":" : "")).join("");
    expect([...rebuilt.matchAll(/.:?/g)].map((m) => m[0]).sort()).toEqual(
      [...SHORT_OPTION_STRING.matchAll(/.:?/g)].map((m) => m[0]).sort(),
    );
    expect(SHORT_OPTIONS.has("v")).toBe(false);
  });

  test("QSB-071 arities", () => {
    for (const n of [
      "s2k-mode",
      "s2k-count",
      "s2k-cipher-algo",
      "s2k-digest-algo",
      "display",
      "default-recipient",
    ]) {
      expect(LONG_OPTIONS.get(n)!.hasArg).toBe(true);
    }
    for (const n of ["export-ssh-key", "with-colons", "default-recipient-self"]) {
      expect(LONG_OPTIONS.get(n)!.hasArg).toBe(false);
    }
    expect(LONG_OPTIONS.get("with-colons")!.id).toBe("with-colons");
    expect(LONG_OPTIONS.get("default-recipient")!.id).not.toBe("default-recipient-self");
    expect(LONG_OPTIONS.get("display")!.id).not.toBe("display-charset");
    expect(COMMANDS.size).toBe(17);
  });
});

describe("parseV1Args", () => {
  test("long forms, short bundles, user IDs", () => {
    const r = parse("--armor", "--local-user=ABC", "-sbu", "DEF", "-r", "--weird", "--textmode", "-");
    expect(r.options).toEqual([
      { id: "armor" },
      { id: "local-user", value: "ABC" },
      { id: "sign" },
      { id: "detach-sign" },
      { id: "local-user", value: "DEF" },
      { id: "recipient", value: "--weird" },
      { id: "textmode" },
    ]);
    expect(r.dashInput).toBe(true);
    const k = parse("--list-public-keys", "--with-colons", "alice", "bob");
    expect(k.commands).toEqual(["list-keys"]);
    expect(k.userIds).toEqual(["alice", "bob"]);
    expect(parse("-k", "--", "-dash").userIds).toEqual(["-dash"]);
  });

  test("fd lists: dedupe, order, verify signature", () => {
    const r = parse(
      "--status-fd",
      "1",
      "--logger-fd",
      "7",
      "--attribute-fd",
      "2",
      "--verify",
      "/dev/fd/9",
      "-",
    );
    expect(r.outputFds).toEqual([1, 2, 7]);
    expect(r.inputFds).toEqual([0, 9]);
    expect(r.verifySigFd).toBe(9);
  });

  test("refusals (by reason, never by message)", () => {
    const cases: [string[], V1OptionReason][] = [
      [["--armo"], "abbreviated-option"],
      [["--nope"], "unrecognized-option"],
      [["--armor=1"], "unexpected-argument"],
      [["-r"], "missing-argument"],
      [["--recipient"], "missing-argument"],
      [["-v"], "invalid-short-option"],
      [["-s", "x"], "positional-not-allowed"],
      [["-s", "-", "-"], "positional-not-allowed"],
      [["-k", "a", "-b"], "dash-positional"],
      [["--command-fd", "0"], "forbidden-option"],
      [["--status-fd", "2", "--status-fd", "2"], "fd-option-twice"],
      [["--verify", "/dev/fd/1"], "bad-verify-signature"],
      [["--verify", "/dev/fd/", "-"], "bad-fd"],
      [["--verify", "/dev/fd/99999"], "bad-fd"],
      [["--list-options", "show-everything"], "bad-sub-option"],
    ];
    for (const [args, reason] of cases) {
      let got: unknown;
      try {
        refused(...args)();
      } catch (e) {
        got = e;
      }
      expect(got).toBeInstanceOf(V1OptionError);
      expect(got).toBeInstanceOf(ProtocolError);
      expect([args, (got as V1OptionError).reason]).toEqual([args, reason]);
      expect((got as V1OptionError).code).toBe("gpg-v1-options");
    }
  });

  test("printable UTF-8", () => {
    expect(isPrintableUtf8(enc("Zoë ✓ 𝄞"))).toBe(true);
    // C1 controls are well-formed UTF-8; upstream's sanitize_string_from_vm accepts them.
    for (const c of [0x80, 0x85, 0x9b, 0x9f]) expect(isPrintableUtf8(new Uint8Array([0xc2, c]))).toBe(true);
    // U+FFFE and U+10FFFF: well-formed, accepted upstream too.
    expect(isPrintableUtf8(new Uint8Array([0xef, 0xbf, 0xbe, 0xf4, 0x8f, 0xbf, 0xbf]))).toBe(true);
    for (const b of [
      [0x7f],
      [0x0a],
      [0x00],
      [0x1f],
      [0xc0, 0x80],
      [0xc1, 0xbf],
      [0xe0, 0x9f, 0xbf],
      [0xed, 0xa0, 0x80],
      [0xf0, 0x8f, 0xbf, 0xbf],
      [0xf4, 0x90, 0x80, 0x80],
      [0xf5, 0x80, 0x80, 0x80],
      [0xc2],
      [0x80],
      [0xc2, 0xc0],
    ]) {
      expect(isPrintableUtf8(new Uint8Array(b))).toBe(false);
    }
  });

  test("fuzz: any argv parses or is refused with our own words only", () => {
    const word = fc.oneof(
      fc.constantFrom(
        ...[...LONG_OPTIONS.keys()].map((k) => `--${k}`),
        "-",
        "--",
        "-sau",
        "-ao-",
        "/dev/fd/5",
        "3",
      ),
      fc.string({ maxLength: 12 }),
      fc.string({ maxLength: 8 }).map((s) => `--${s}`),
      fc.string({ maxLength: 4 }).map((s) => `-${s}`),
    );
    const secret = "SECRET-MARKER";
    fc.assert(
      fc.property(fc.array(word, { maxLength: 8 }), (words) => {
        const argv = words.map((w) => (w.length > 6 ? w : w + (w.startsWith("-") ? "" : secret)));
        try {
          const r = parseV1Args(argv.map(enc));
          checkRequest(r);
        } catch (e) {
          if (!(e instanceof V1OptionError)) throw e;
          expect(e.message).not.toContain(secret);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

/** Invariants of an accepted request and of the argv built from it. */
function checkRequest(r: V1Request): void {
  for (const o of r.options) expect(LONG_OPTIONS.get(o.id)?.allowed ?? COMMANDS.has(o.id)).toBe(true);
  const inv = buildGpgArgv(r, "gpg", "/h");
  expect(inv.argv.slice(1, 6)).toEqual([...SAFE_PREFIX]);
  expect(inv.argv[6]).toBe("--homedir=/h");
  const dd = inv.argv.indexOf("--");
  for (const w of inv.argv.slice(7, dd)) {
    expect(w).toMatch(/^--[a-z0-9-]+(=|$)/);
    const name = w.slice(2).split("=")[0]!;
    expect(name === "enable-special-filenames" || LONG_OPTIONS.get(name)?.allowed === true).toBe(true);
  }
  expect(new Set(inv.childOutputFds).size).toBe(inv.childOutputFds.length);
}

describe("canonical argv and secret use", () => {
  test("fds renumbered, signature as -&N after --", () => {
    const r = parse("--status-fd", "9", "--logger-fd", "2", "--verify", "/dev/fd/40", "-");
    const inv = buildGpgArgv(r, "gpg", "/h");
    expect(inv.argv.slice(6)).toEqual([
      "--homedir=/h",
      "--enable-special-filenames",
      "--status-fd=3",
      "--logger-fd=2",
      "--verify",
      "--",
      "-&4",
      "-",
    ]);
    expect(inv.childOutputFds).toEqual([1, 2, 3]);
    expect(inv.childInputFds).toEqual([0, 4]);
  });

  test("secretUse", () => {
    expect(secretUse(parse("-s"))).toBe("sign");
    expect(secretUse(parse("--clearsign"))).toBe("sign");
    expect(secretUse(parse("-se", "-r", "x"))).toBe("sign+encrypt");
    expect(secretUse(parse("-d"))).toBe("decrypt");
    expect(secretUse(parse("--armor"))).toBe("decrypt"); // gpg guesses from the data
    expect(secretUse(parse("-e", "-r", "x"))).toBeNull();
    expect(secretUse(parse("-k"))).toBeNull();
    expect(secretUse(parse("--verify"))).toBeNull();
    expect(secretUse(parse("--version"))).toBeNull();
    expect(signerSpecs(parse("-s", "--default-key", "A"))).toEqual(["A"]);
    expect(signerSpecs(parse("-s", "-u", "B", "--default-key", "A"))).toEqual(["B"]);
  });
});

describe("signatureHashIsSha2 (red team G1: digest grants only where gpg cannot sign SHA-1)", () => {
  test("SHA-2 or no digest option: yes; SHA-1, MD5, RIPEMD-160 or a legacy mode: no", () => {
    expect(signatureHashIsSha2(parse("-b", "-a"))).toBe(true);
    expect(signatureHashIsSha2(parse("--digest-algo", "SHA512", "-b"))).toBe(true);
    expect(signatureHashIsSha2(parse("--personal-digest-preferences", "SHA256 SHA512", "-b"))).toBe(true);
    for (const weak of [
      ["--digest-algo", "SHA1"],
      ["--digest-algo", "sha1"],
      ["--digest-algo", "H2"],
      ["--digest-algo", "MD5"],
      ["--digest-algo", "RIPEMD160"],
      ["--personal-digest-preferences", "SHA256 SHA1"],
      ["--pgp6"],
      ["--pgp7"],
      ["--rfc2440"],
    ])
      expect([weak, signatureHashIsSha2(parse(...weak, "-b"))]).toEqual([weak, false]);
  });
});
