/**
 * parsePolicy(): the syntax-error rows of test/vectors/policy/device-policy.json (each must throw
 * ConfigError naming FILE:LINE), rule structure and parameter defaults (upstream TC_10_Rule,
 * TC_11_Rule_service, TC_20_Policy re-expressed), file selection and order, and includes.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AssertionError, ConfigError } from "../errors.ts";
import type { IncludeKind, PolicyFile, PolicyRule, ReadInclude } from "./policy.ts";
import { MAX_INCLUDE_DEPTH, parsePolicy, selectPolicyFiles } from "./policy-parse.ts";

interface VectorFile {
  name: string;
  lines: string[];
}
interface SyntaxErrorCase {
  from: string;
  line?: string;
  files?: VectorFile[];
  includes?: Record<string, VectorFile[]>;
  at?: string;
  error: string;
}
const vectors = JSON.parse(
  readFileSync(join(import.meta.dir, "../../test/vectors/policy/device-policy.json"), "utf8"),
) as { syntaxErrors: SyntaxErrorCase[] };

const toFiles = (list: VectorFile[]): PolicyFile[] =>
  list.map((f) => ({ name: f.name, text: f.lines.join("\n") }));
const reader =
  (includes: Record<string, VectorFile[]> = {}): ReadInclude =>
  (path, kind) => {
    const key = `${kind}:${path}`;
    return Object.hasOwn(includes, key) ? toFiles(includes[key]!) : null;
  };
const one = (text: string) => parsePolicy([{ name: "50-test.policy", text }]);
const rule = (line: string): PolicyRule => {
  const rules = one(line).rules;
  expect(rules).toHaveLength(1);
  return rules[0]!;
};
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("syntax errors (device-policy.json)", () => {
  test("the file has its cases", () => expect(vectors.syntaxErrors.length).toBeGreaterThanOrEqual(50));
  for (const c of vectors.syntaxErrors) {
    test(`${c.line !== undefined ? JSON.stringify(c.line) : c.files?.map((f) => f.name).join(",")} (${c.from})`, () => {
      const files = c.files ? toFiles(c.files) : [{ name: "50-test.policy", text: c.line ?? "" }];
      const e = configError(() => parsePolicy(files, reader(c.includes)));
      expect(e.message).toContain(c.error);
      const at = c.at ?? (c.line !== undefined ? "50-test.policy:1" : undefined);
      if (at !== undefined) expect(e.message.startsWith(`${at}: `)).toBe(true);
    });
  }
});

describe("rules", () => {
  test("a simple rule (TC_10_Rule.test_020)", () => {
    const r = rule("test.Service +argument @anyvm @anyvm ask");
    expect(r).toMatchObject({
      service: "test.Service",
      argument: "+argument",
      file: "50-test.policy",
      line: 1,
    });
    expect(r.source).toEqual({ kind: "@anyvm", text: "@anyvm", value: "@anyvm" });
    expect(r.action).toEqual({
      kind: "ask",
      target: null,
      defaultTarget: null,
      user: null,
      notify: false,
      autostart: true,
    });
  });
  test("tags, types and parameters (test_021-024)", () => {
    const r = rule("test.Service +argument @tag:tag1 @type:AppVM ask target=test-vm2 user=user");
    expect(r.source).toEqual({ kind: "@tag:", text: "@tag:tag1", value: "tag1" });
    expect(r.target).toEqual({ kind: "@type:", text: "@type:AppVM", value: "AppVM" });
    expect(r.action).toMatchObject({ kind: "ask", target: { kind: "name", text: "test-vm2" }, user: "user" });
    const d = rule("test.Service +argument @anyvm @default allow target=@dispvm:test-vm2").action;
    expect(d).toMatchObject({ kind: "allow", target: { kind: "@dispvm:", value: "test-vm2" } });
    expect(rule("t * @anyvm @default ask default_target=test-vm1").action).toMatchObject({
      defaultTarget: { text: "test-vm1" },
    });
    expect(rule("t * @anyvm @adminvm ask default_target=@adminvm").action).toMatchObject({
      defaultTarget: { kind: "@adminvm" },
    });
  });
  test("* service and argument are null; + is the empty argument", () => {
    expect(rule("* * @anyvm @anyvm deny")).toMatchObject({ service: null, argument: null });
    expect(rule("s + @anyvm @anyvm deny")).toMatchObject({ service: "s", argument: "+" });
    expect(rule("s +a+b @anyvm @anyvm deny")).toMatchObject({ argument: "+a+b" });
  });
  test("notify defaults to yes for deny and no for allow/ask; autostart defaults to yes", () => {
    for (const [action, notify] of [
      ["deny", true],
      ["allow", false],
      ["ask", false],
    ] as const) {
      expect(rule(`s * @anyvm @adminvm ${action}`).action.notify).toBe(notify);
      expect(rule(`s * @anyvm @adminvm ${action} notify=yes`).action.notify).toBe(true);
      expect(rule(`s * @anyvm @adminvm ${action} notify=no`).action.notify).toBe(false);
    }
    for (const action of ["allow", "ask"]) {
      expect(rule(`s * @anyvm @anyvm ${action}`).action).toMatchObject({ autostart: true });
      expect(rule(`s * @anyvm @anyvm ${action} autostart=yes`).action).toMatchObject({ autostart: true });
      expect(rule(`s * @anyvm @anyvm ${action} autostart=no`).action).toMatchObject({ autostart: false });
    }
  });
  test("every token kind is accepted where upstream accepts it (TC_00_VMToken)", () => {
    const uuid = "uuid:d8a249f1-b02b-4944-a9e5-437def2fbe2c";
    for (const s of ["test-vm1", "@adminvm", "dom0", "@anyvm", "*", uuid, "@type:AppVM", "@tag:tag1"]) {
      expect(rule(`s * ${s} ${s} deny`).source.text).toBe(s);
    }
    for (const s of ["@dispvm:default-dvm", "@dispvm:@tag:tag3", `@dispvm:${uuid}`]) {
      expect(rule(`s * ${s} ${s} deny`).target.text).toBe(s);
    }
    for (const t of ["@default", "@dispvm"]) expect(rule(`s * @anyvm ${t} deny`).target.text).toBe(t);
    for (const t of ["test-vm1", "@adminvm", "dom0", uuid, "@dispvm", "@dispvm:default-dvm"]) {
      expect(rule(`s * @anyvm @anyvm allow target=${t}`).action).toMatchObject({ target: { text: t } });
    }
  });
  test("an R4.0-format file: $ for @, commas between parameters (TC_20_Policy.test_003)", () => {
    const includes = {
      "file:new-syntax": [
        {
          name: "new-syntax",
          lines: ["test-vm2 test-vm3 ask", "# c  ", "@anyvm @dispvm ask default_target=@dispvm"],
        },
      ],
      "file:old-syntax": [
        {
          name: "old-syntax",
          lines: ["test-vm2 test-vm3 ask", "# c  ", "$anyvm $dispvm ask,default_target=$dispvm"],
        },
      ],
    };
    const p = parsePolicy(
      [{ name: "a.policy", text: "!include-service * * new-syntax\n!include-service * * old-syntax" }],
      reader(includes),
    );
    expect(p.rules).toHaveLength(4);
    for (const r of [p.rules[1]!, p.rules[3]!]) {
      expect(r).toMatchObject({
        service: null,
        argument: null,
        source: { text: "@anyvm" },
        target: { text: "@dispvm" },
      });
      expect(r.action).toMatchObject({ kind: "ask", defaultTarget: { text: "@dispvm" } });
    }
    expect(p.rules[3]).toMatchObject({ file: "old-syntax", line: 3 });
  });
  test("an R4.0-format line of commas only is a wrong number of fields, not a crash", () => {
    const read: ReadInclude = () => [{ name: "old", text: ",,\n" }];
    const e = configError(() => parsePolicy([{ name: "a.policy", text: "!include-service * * old" }], read));
    expect(e.message).toStartWith("old:1: wrong number of fields");
  });
});

describe("files", () => {
  test("comments, blank lines, indentation and trailing blanks (TC_20_Policy.test_000)", () => {
    const p = one(
      "* * test-vm1 test-vm2 allow\n\n# comment\n* * test-vm2 test-vm3 ask\n    # comment   \n\t* * @anyvm @anyvm ask  \n",
    );
    expect(p.rules.map((r) => [r.line, r.source.text])).toEqual([
      [1, "test-vm1"],
      [4, "test-vm2"],
      [6, "@anyvm"],
    ]);
  });
  test("CRLF and CR line ends count lines as LF does", () => {
    expect(one("# a\r\n\r\n* * a b deny\r\n").rules[0]!.line).toBe(3);
    expect(one("# a\r\r* * a b deny").rules[0]!.line).toBe(3);
  });
  test("dot files and other suffixes are ignored; the rest sorted by C locale; first duplicate wins", () => {
    const f = (name: string) => ({ name, text: "" });
    const picked = selectPolicyFiles([
      f("90-default.policy"),
      f("/run/x/30-user.policy"),
      f(".30-hidden.policy"),
      f("README"),
      f("30-user.policy.rpmnew"),
      f("50_b.policy"),
      f("50-a.policy"),
      f("/etc/x/30-user.policy"),
      f("100.policy"),
    ]).map((x) => x.name);
    expect(picked).toEqual([
      "100.policy",
      "/run/x/30-user.policy",
      "50-a.policy",
      "50_b.policy",
      "90-default.policy",
    ]);
  });
  test("an invalid name fails everything, ignored names never do", () => {
    expect(configError(() => parsePolicy([{ name: "Bad.policy", text: "" }])).message).toContain(
      "Bad.policy",
    );
    expect(
      parsePolicy([
        { name: ".Bad.policy", text: "garbage" },
        { name: "Bad", text: "garbage" },
      ]).rules,
    ).toEqual([]);
  });
});

describe("includes", () => {
  test("included rules sit where the directive is, with their own file and line (TC_20_Policy.test_002)", () => {
    const p = parsePolicy(
      [{ name: "a.policy", text: "* * test-vm1 test-vm2 allow\n!include file2\n* * @anyvm @anyvm deny" }],
      reader({ "file:file2": [{ name: "file2", lines: ["* * test-vm3 @default allow target=test-vm2"] }] }),
    );
    expect(p.rules.map((r) => `${r.file}:${r.line} ${r.source.text}`)).toEqual([
      "a.policy:1 test-vm1",
      "file2:1 test-vm3",
      "a.policy:3 @anyvm",
    ]);
  });
  test("the callback is asked for each path with its kind", () => {
    const calls: [string, IncludeKind][] = [];
    const read: ReadInclude = (path, kind) => {
      calls.push([path, kind]);
      return kind === "file" ? [{ name: path, text: "" }] : [];
    };
    parsePolicy(
      [{ name: "a.policy", text: "!include x\n!include-dir d\n!include-service s * y\n!compat-4.0" }],
      read,
    );
    expect(calls).toEqual([
      ["x", "file"],
      ["d", "dir"],
      ["y", "file"],
      ["/etc/qubes-rpc/policy", "compat-4.0"],
    ]);
  });
  test("without a callback every include is missing", () => {
    expect(configError(() => one("!include x")).message).toBe('50-test.policy:1: not a file: "x"');
  });
  test(`nesting deeper than ${MAX_INCLUDE_DEPTH} is an error, not a stack overflow`, () => {
    const read: ReadInclude = (path) => [{ name: path, text: `!include ${path}x` }];
    expect(
      configError(() => parsePolicy([{ name: "a.policy", text: "!include x" }], read)).message,
    ).toContain("nested deeper");
  });
  test("a callback that returns several files for a file is a bug", () => {
    const read: ReadInclude = () => [
      { name: "a", text: "" },
      { name: "b", text: "" },
    ];
    expect(() => parsePolicy([{ name: "a.policy", text: "!include x" }], read)).toThrow(AssertionError);
  });
});

describe("messages", () => {
  test("quote the operator's text with control characters escaped, and bounded", () => {
    expect(configError(() => one("s * a\u0000b @anyvm deny")).message).toBe(
      '50-test.policy:1: invalid source "a\\u0000b"',
    );
    const long = configError(() => one(`s * ${"a".repeat(10000)} @anyvm deny`)).message;
    expect(long.length).toBeLessThan(200);
  });
});
