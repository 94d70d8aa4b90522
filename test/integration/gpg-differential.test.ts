/**
 * The differential test against the device's own gpg (like upstream's test_080; QSB-071 was a
 * wrong arity): for every option `gpg --dump-options` lists that our v1 table knows, and for
 * every short option we accept, gpg and our parser must agree on whether it takes an argument.
 * gpg is asked with `<opt> --garbage-1 --garbage-2`: the garbage it names as invalid tells.
 * Also: every name in our table is an option this gpg knows.
 * Run for each gpg a device may run: 2.2 (Raspberry Pi OS bookworm) and 2.4 (Debian 13's, in
 * the cached root of gpg-versions.ts; a missing root fails under CI).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";
import { parseV1Args, V1OptionError } from "../../core/gpg/v1-options.ts";
import { LONG_OPTIONS, SHORT_OPTIONS } from "../../core/gpg/v1-table.ts";
import { cleanup, tempDir } from "../fixtures/gpg/env.ts";
import { type GnupgVersion, gnupg22, gnupg24, isUnavailable } from "./gpg-versions.ts";

const got24 = await gnupg24();
if (isUnavailable(got24)) console.warn(`gpg-differential: 2.4 skipped, ${got24.reason}`);
const VERSIONS: GnupgVersion[] = [await gnupg22(), ...(isUnavailable(got24) ? [] : [got24])];

let home: string;
const dumped = new Map<string, string[]>();
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

beforeAll(async () => {
  home = tempDir("diff");
  for (const v of VERSIONS) {
    const out = dec((await capture([v.gpg, "--dump-options"])).stdout);
    dumped.set(
      v.label,
      out.split("\n").filter((l) => l.startsWith("--")),
    );
  }
});

afterAll(async () => {
  for (const v of VERSIONS) await capture([v.gpgconf, "--homedir", home, "--kill", "all"]);
  cleanup(home);
});

/** true/false: gpg takes an argument; null: gpg's answer does not tell. */
async function gpgTakesArgument(v: GnupgVersion, opt: string): Promise<boolean | null> {
  const probe = async (args: string[]) =>
    dec(
      (await capture([v.gpg, "--homedir", home, "--batch", "--no-tty", opt, ...args], { timeoutMs: 10_000 }))
        .stderr,
    );
  const err = await probe(["--garbage-1", "--garbage-2"]);
  // A numeric option (--max-output) rejects "--garbage-1" as its value: it takes an argument.
  if (err.includes(`invalid argument for option "${opt}"`)) return true;
  const m = /invalid option "(--garbage-[12])"/.exec(err);
  if (m) return m[1] === "--garbage-2";
  // gpg 2.4 reads "--garbage-1" as fd 0 for --logger-fd and logs the complaint there, out of
  // sight. Ask again with a real fd: a value is consumed and "--garbage-1" is refused, while a
  // positional "2" ends gpg's option parsing, so nothing is refused.
  const again = await probe(["2", "--garbage-1"]);
  if (again.includes('invalid option "--garbage-1"')) return true;
  return again.includes("is not considered an option") ? false : null;
}

/** Our parser's view, from its behaviour (not just the table). */
function oursTakesArgument(opt: string): boolean {
  try {
    parseV1Args([opt, "--garbage-1"].map((s) => new TextEncoder().encode(s)));
    return true; // "--garbage-1" was consumed as the value
  } catch (e) {
    if (!(e instanceof V1OptionError)) throw e;
    if (e.reason === "unrecognized-option") return false; // "--garbage-1" was read as an option
    // Refused for another reason (a refused option, a value check): fall back to the table.
    const long = opt.startsWith("--") ? LONG_OPTIONS.get(opt.slice(2)) : SHORT_OPTIONS.get(opt.slice(1));
    return long!.hasArg;
  }
}

for (const v of VERSIONS) {
  describe(`v1 option arity agrees with the device's gpg ${v.label}`, () => {
    const list = () => dumped.get(v.label)!;

    test("gpg --dump-options is usable", () => {
      expect(list().length).toBeGreaterThan(200);
    });

    test("every option in our table is one gpg knows", () => {
      const known = new Set(list().map((l) => l.slice(2)));
      const unknown = [...LONG_OPTIONS.keys()].filter((n) => !known.has(n));
      expect(unknown).toEqual([]);
    });

    test("every long option both know: the same arity", async () => {
      const ours = list().filter((l) => LONG_OPTIONS.has(l.slice(2)) && l !== "--version");
      expect(ours.length).toBeGreaterThan(100);
      const disagree: string[] = [];
      for (let i = 0; i < ours.length; i += 8) {
        await Promise.all(
          ours.slice(i, i + 8).map(async (opt) => {
            const theirs = await gpgTakesArgument(v, opt);
            const mine = oursTakesArgument(opt);
            if (theirs === null || theirs !== mine) disagree.push(`${opt}: gpg ${theirs}, ours ${mine}`);
          }),
        );
      }
      expect(disagree).toEqual([]);
    }, 120_000);

    test("every short option: the same arity", async () => {
      const disagree: string[] = [];
      for (const letter of SHORT_OPTIONS.keys()) {
        const theirs = await gpgTakesArgument(v, `-${letter}`);
        const mine = oursTakesArgument(`-${letter}`);
        if (theirs !== mine) disagree.push(`-${letter}: gpg ${theirs}, ours ${mine}`);
      }
      expect(disagree).toEqual([]);
    }, 60_000);
  });
}
