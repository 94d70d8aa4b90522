import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  EXPORT_OPTIONS,
  LIST_OPTIONS,
  SubOptionError,
  sanitizeOptionList,
  VERIFY_OPTIONS,
} from "./v1-sublists.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const list = (v: string) => sanitizeOptionList(v, LIST_OPTIONS);

describe("sub-option lists", () => {
  test("canonical form", () => {
    expect(list("help")).toBe("help");
    expect(list("")).toBe("");
    expect(list(" show-usage,,  SHOW-Notations no-show-keyring ")).toBe(
      "show-usage,show-notations,no-show-keyring",
    );
    expect(list("show-sig-subpackets")).toBe("show-sig-subpackets");
    expect(list("show-sig-subpackets = 007")).toBe("show-sig-subpackets=7");
    expect(list("show-sig-subpackets=+3,show-usage")).toBe("show-sig-subpackets=3,show-usage");
    expect(list('show-sig-subpackets=" 1 2,,3 "')).toBe('show-sig-subpackets="1,2,3"');
    expect(list("show-sig-subpackets=,show-usage")).toBe("show-sig-subpackets=,show-usage");
    expect(sanitizeOptionList("show-primary-key-only", VERIFY_OPTIONS)).toBe("show-primary-key-only");
    expect(sanitizeOptionList("no-export-dane,backup", EXPORT_OPTIONS)).toBe("no-export-dane,backup");
  });

  const bad: [string, string][] = [
    ["show-sig-subpackets=1+1", "invalid character following"],
    ["show-sig-subpackets=0", "between 1 and 127"],
    ["show-sig-subpackets=128", "between 1 and 127"],
    ["show-sig-subpackets=-1", "between 1 and 127"],
    ["show-sig-subpackets=x", "invalid character in"],
    ['show-sig-subpackets="1', "unterminated"],
    ['show-sig-subpackets="1"x', "only a space or comma"],
    ["show-keyring", "forbidden"],
    ["no-show-sig-subpackets=1", "does not take an argument"],
    ["show-usage=1", "does not take an argument"],
    ["=show-usage", "'=' not following"],
    ["show-everything", "unknown"],
    ["show-usage\t", "control character"],
    ["show-usé", "non-ASCII"],
    ["HELP", "unknown"],
  ];
  for (const [v, why] of bad) {
    test(`refuses ${JSON.stringify(v)}`, () => expect(() => list(v)).toThrow(why));
  }

  test("fuzz: output is canonical and stable", () => {
    const tok = fc.oneof(
      fc.constantFrom(
        ...LIST_OPTIONS.keys(),
        "no-show-keyring",
        "show-sig-subpackets=",
        "=",
        ",",
        " ",
        '"',
        "1",
        "+",
      ),
      fc.string({ maxLength: 5 }),
    );
    fc.assert(
      fc.property(fc.array(tok, { maxLength: 8 }), (parts) => {
        let out: string;
        try {
          out = list(parts.join(""));
        } catch (e) {
          if (!(e instanceof SubOptionError)) throw e;
          return;
        }
        expect(out).toMatch(/^[a-z0-9,=" -]*$/);
        expect(list(out)).toBe(out);
      }),
      { numRuns: RUNS },
    );
  });
});
