/**
 * Errors are matched by type, never by their text (DESIGN.md "What every part does with bad
 * input"): product code tells errors apart with instanceof or a code field, so a reworded
 * message or a renamed class cannot silently change which branch runs, and a peer cannot steer
 * one by what it puts into a message.
 *
 * Scans every product source (all but test/ and *.test.ts) for a caught error's message or name
 * compared, searched or tested: `e.message === "..."`, `err.message.startsWith(...)`,
 * `(error as Error).name === "..."`, `/.../.test(e.message)`, `String(e).includes(...)`.
 * Only identifiers that name caught errors (e, err, error, ex, cause, or a cast of one) count,
 * so `c.name === name` for commands stays allowed. Reading a message to show it is fine.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { filesUnder, isTest, SKIP_DIRS } from "./helpers/layering-check.ts";
import { stripComments } from "./helpers/source-imports.ts";

const ROOT = resolve(import.meta.dir, "..");

/** Product source files: every top-level folder but test/, without *.test.ts. */
function productFiles(): string[] {
  return readdirSync(ROOT, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith(".") && !SKIP_DIRS.has(e.name) && e.name !== "test")
    .flatMap((e) => filesUnder(ROOT, e.name))
    .filter((f) => !isTest(f))
    .sort();
}

/** A caught error: `e`, `err`, `error`, `ex`, `cause`, or a cast of one such as `(e as Error)`. */
const ERR = String.raw`(?:(?<![\w$.])(?:e|err|error|ex|cause)|\(\s*(?:e|err|error|ex|cause)\s+as\s+[^()]+\))`;
/** Its message or name, reached with `.` or `?.`. */
const TEXT = String.raw`${ERR}\s*\??\.\s*(?:message|name)(?![\w$])`;
const COMPARE = "(?:===|!==|==|!=)";
const SEARCH = String.raw`\s*\??\.\s*(?:startsWith|endsWith|includes|indexOf|match|matchAll|search|localeCompare)\s*\(`;

const RULES: readonly [RegExp, string][] = [
  [new RegExp(String.raw`${TEXT}\s*${COMPARE}`), "compares an error's message or name"],
  [new RegExp(String.raw`${COMPARE}\s*${TEXT}`), "compares an error's message or name"],
  [new RegExp(`${TEXT}${SEARCH}`), "searches an error's message or name"],
  [new RegExp(String.raw`\.test\(\s*${TEXT}\s*\)`), "tests an error's message or name with a regex"],
  [new RegExp(String.raw`String\(\s*${ERR}\s*\)${SEARCH}`), "searches an error's text"],
];

/** Violations in one file's text, as "file:line: what". */
function violations(file: string, src: string): string[] {
  const out: string[] = [];
  stripComments(src)
    .split("\n")
    .forEach((line, i) => {
      for (const [pattern, what] of RULES) {
        if (pattern.test(line)) out.push(`${file}:${i + 1}: ${what} (match by type: instanceof or a code)`);
      }
    });
  return out;
}

describe("errors are matched by type, never by message or name", () => {
  test("no product source matches an error by its text", () => {
    const files = productFiles();
    expect(files.length).toBeGreaterThan(100);
    expect(files.some((f) => f.startsWith("test/") || f.endsWith(".test.ts"))).toBe(false);
    expect(files.flatMap((f) => violations(f, readFileSync(join(ROOT, f), "utf-8")))).toEqual([]);
  });
});

describe("the checker itself", () => {
  const flagged = [
    'if (e.message === "token-used") return;',
    'const t = error instanceof Error && error.message === "token-used";',
    'if (e?.name === "ProtocolError") return e.code;',
    'if ((error as Error).name === "ProtocolError") return fail();',
    'if ((e as { message: string }).message !== "x") throw e;',
    'if (err.message.startsWith("audit log")) return;',
    'if (e instanceof Error && e.message.startsWith("gpio chip")) throw e;',
    'return error.message?.includes("EPIPE");',
    'if ("closed" === e.message) return;',
    "if (/timeout/i.test(err.message)) retry();",
    'if (String(e).includes("ENOENT")) return null;',
  ];
  const allowed = [
    "const command = COMMANDS.find((c) => c.name === name);",
    "if (li.name === line.line) return found;",
    "return fail((error as Error).message);",
    "if (e instanceof ConfigError) return fail(e.message);",
    'if (error instanceof ProtocolError && error.code === "link-lost") return;',
    'const name = typeof v.name === "string" ? v.name : "";',
    'log("failed", { why: (error as Error).message });',
    "if (node.message === other.message) merge();",
    '// never: if (e.message === "x")',
    '/** e.g. `e.message.startsWith("...")` in a doc comment */',
    'const t = x; // not: if (e.message === "x")',
  ];

  test.each(flagged)("flags %s", (line) => {
    expect(violations("x.ts", line)).toHaveLength(1);
  });

  test.each(allowed)("allows %s", (line) => {
    expect(violations("x.ts", line)).toEqual([]);
  });

  test("skips block comments and keeps line numbers", () => {
    const src = ["/**", ' * if (e.message === "x")', " */", "", 'if (err.name === "TypeError") {}'].join(
      "\n",
    );
    expect(violations("a.ts", src)).toEqual([
      "a.ts:5: compares an error's message or name (match by type: instanceof or a code)",
    ]);
  });
});
