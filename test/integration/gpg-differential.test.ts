/**
 * The differential test against the device's own gpg (like upstream's test_080; QSB-071 was a
 * wrong arity): for every option `gpg --dump-options` lists that our v1 table knows, and for
 * every short option we accept, gpg and our parser must agree on whether it takes an argument.
 * gpg is asked with `<opt> --garbage-1 --garbage-2`: the garbage it names as invalid tells.
 * Also: every name in our table is an option this gpg knows.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";
import { parseV1Args, V1OptionError } from "../../core/gpg/v1-options.ts";
import { LONG_OPTIONS, SHORT_OPTIONS } from "../../core/gpg/v1-table.ts";
import { cleanup, killAgents, tempDir } from "../fixtures/gpg/env.ts";

let home: string;
let dumped: string[];
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

beforeAll(async () => {
  home = tempDir("diff");
  dumped = dec((await capture(["gpg", "--dump-options"])).stdout)
    .split("\n")
    .filter((l) => l.startsWith("--"));
});

afterAll(async () => {
  await killAgents(home);
  cleanup(home);
});

/** true/false: gpg takes an argument; null: gpg's answer does not tell. */
async function gpgTakesArgument(opt: string): Promise<boolean | null> {
  const r = await capture(
    ["gpg", "--homedir", home, "--batch", "--no-tty", opt, "--garbage-1", "--garbage-2"],
    {
      timeoutMs: 10_000,
    },
  );
  const err = dec(r.stderr);
  // A numeric option (--max-output) rejects "--garbage-1" as its value: it takes an argument.
  if (err.includes(`invalid argument for option "${opt}"`)) return true;
  const m = /invalid option "(--garbage-[12])"/.exec(err);
  return m ? m[1] === "--garbage-2" : null;
}

/** Our parser's view, from its behaviour (not just the table). */
function oursTakesArgument(opt: string): boolean {
  try {
    parseV1Args([opt, "--garbage-1"].map((s) => new TextEncoder().encode(s)));
    return true; // "--garbage-1" was consumed as the value
  } catch (e) {
    if (!(e instanceof V1OptionError)) throw e;
    if (/unrecognized/.test(e.message)) return false; // "--garbage-1" was read as an option
    // Refused for another reason (a refused option, a value check): fall back to the table.
    const long = opt.startsWith("--") ? LONG_OPTIONS.get(opt.slice(2)) : SHORT_OPTIONS.get(opt.slice(1));
    return long!.hasArg;
  }
}

describe("v1 option arity agrees with the device's gpg", () => {
  test("gpg --dump-options is usable", () => {
    expect(dumped.length).toBeGreaterThan(200);
  });

  test("every option in our table is one gpg knows", () => {
    const known = new Set(dumped.map((l) => l.slice(2)));
    const unknown = [...LONG_OPTIONS.keys()].filter((n) => !known.has(n));
    expect(unknown).toEqual([]);
  });

  test("every long option both know: the same arity", async () => {
    const ours = dumped.filter((l) => LONG_OPTIONS.has(l.slice(2)) && l !== "--version");
    expect(ours.length).toBeGreaterThan(100);
    const disagree: string[] = [];
    for (let i = 0; i < ours.length; i += 8) {
      await Promise.all(
        ours.slice(i, i + 8).map(async (opt) => {
          const theirs = await gpgTakesArgument(opt);
          const mine = oursTakesArgument(opt);
          if (theirs === null || theirs !== mine) disagree.push(`${opt}: gpg ${theirs}, ours ${mine}`);
        }),
      );
    }
    expect(disagree).toEqual([]);
  }, 60_000);

  test("every short option: the same arity", async () => {
    const disagree: string[] = [];
    for (const letter of SHORT_OPTIONS.keys()) {
      const theirs = await gpgTakesArgument(`-${letter}`);
      const mine = oursTakesArgument(`-${letter}`);
      if (theirs !== mine) disagree.push(`-${letter}: gpg ${theirs}, ours ${mine}`);
    }
    expect(disagree).toEqual([]);
  }, 30_000);
});
