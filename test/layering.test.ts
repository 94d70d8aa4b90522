/**
 * The dependency direction of DESIGN.md ("Components and layout"): agent/host -> transport/
 * platform -> core. Checked on the source text, so a violation fails here with file:line before
 * it becomes a runtime surprise on Node (the Armory) or in a compiled binary.
 *
 *   core/                  imports only relative paths inside core/ and @noble/*; uses no Bun or
 *                          Node globals (Bun., process., Buffer, require(, import.meta).
 *   transport/, platform/, runtime/  never import agent/ or host/ (runtime/ is the wiring
 *   agent and host share: call execution, qfile pack/unpack).
 *
 * Test files (*.test.ts) are exempt: they may use test helpers and runtime APIs.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

function sourceFiles(dir: string): string[] {
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(join(ROOT, dir), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(rel));
    else if (/\.(ts|tsx|mts|js|mjs)$/.test(e.name) && !/\.test\.[a-z]+$/.test(e.name)) out.push(rel);
  }
  return out.sort();
}

/**
 * Blanks comments (keeping newlines, so offsets and line numbers stay put), and with `strings`
 * also the contents of '...' and "..." literals. Template literals are left as code (their
 * ${...} parts are code; a false alarm in their text is harmless). A small scanner, enough for
 * our own sources.
 */
function stripComments(src: string, strings = false): string {
  const out = src.split("");
  let i = 0;
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  while (i < src.length) {
    const c = src[i]!;
    const next = src[i + 1];
    if (c === "/" && next === "/") {
      const end = src.indexOf("\n", i);
      const stop = end === -1 ? src.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end === -1 ? src.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      const start = ++i;
      while (i < src.length && src[i] !== c) i += src[i] === "\\" ? 2 : 1;
      if (strings && c !== "`") blank(start, Math.min(i, src.length));
      i++;
    } else {
      i++;
    }
  }
  return out.join("");
}

interface Import {
  readonly spec: string;
  readonly line: number;
}

const IMPORT_PATTERNS = [
  // import x from "y"; import { a } from "y"; export * from "y"; import type ... from "y"
  /(?:^|[^.\w$])(?:import|export)\b[^;'"`]*?\bfrom\s*(["'])([^"'\n]+)\1/g,
  // import "y" (side effects)
  /(?:^|[^.\w$])import\s*(["'])([^"'\n]+)\1/g,
  // import("y"), require("y")
  /(?:^|[^.\w$])(?:import|require)\s*\(\s*(["'])([^"'\n]+)\1\s*\)/g,
];

function importsOf(code: string): Import[] {
  const found = new Map<number, Import>();
  for (const pattern of IMPORT_PATTERNS) {
    for (const m of code.matchAll(pattern)) {
      const at = m.index + m[0].lastIndexOf(m[2]!);
      found.set(at, { spec: m[2]!, line: code.slice(0, at).split("\n").length });
    }
  }
  return [...found.values()].sort((a, b) => a.line - b.line);
}

const FORBIDDEN_GLOBALS: readonly [RegExp, string][] = [
  [/(?:^|[^.\w$])Bun\s*[.[]/, "Bun."],
  [/(?:^|[^.\w$])process\s*[.[]/, "process."],
  [/(?:^|[^.\w$])Buffer\b/, "Buffer"],
  [/(?:^|[^.\w$])require\s*\(/, "require("],
  [/\bimport\s*\.\s*meta\b/, "import.meta"],
  [/\bglobalThis\s*\.\s*(?:Bun|process|Buffer|require)\b/, "globalThis runtime global"],
];

/** Violations of the core/ rules in one file's text, as "file:line: what". */
function coreViolations(file: string, src: string): string[] {
  const code = stripComments(src);
  const bare = stripComments(src, true);
  const out: string[] = [];
  const coreDir = join(ROOT, "core") + sep;
  for (const { spec, line } of importsOf(code)) {
    if (spec.startsWith("@noble/")) continue;
    if (spec.startsWith(".")) {
      const target = resolve(ROOT, dirname(file), spec);
      if (target.startsWith(coreDir)) continue;
      out.push(`${file}:${line}: imports ${spec}, outside core/`);
    } else {
      out.push(`${file}:${line}: imports ${spec} (core/ may import only core/ and @noble/*)`);
    }
  }
  bare.split("\n").forEach((text, i) => {
    for (const [pattern, name] of FORBIDDEN_GLOBALS) {
      if (pattern.test(text)) out.push(`${file}:${i + 1}: uses ${name} (core/ has no runtime globals)`);
    }
  });
  return out;
}

/** Imports of agent/ or host/ from a lower layer. */
function upwardViolations(file: string, src: string): string[] {
  const out: string[] = [];
  for (const { spec, line } of importsOf(stripComments(src))) {
    if (!spec.startsWith(".")) continue;
    const top = relative(ROOT, resolve(ROOT, dirname(file), spec)).split(sep)[0];
    if (top === "agent" || top === "host")
      out.push(`${file}:${line}: imports ${spec} (${top}/ is a higher layer)`);
  }
  return out;
}

const read = (file: string) => readFileSync(join(ROOT, file), "utf-8");

describe("layering (DESIGN.md: agent/host -> transport/platform -> core)", () => {
  test("core/ imports only core/ and @noble/*, and uses no Bun/Node globals", () => {
    const files = sourceFiles("core");
    expect(files.length).toBeGreaterThan(10);
    expect(files.flatMap((f) => coreViolations(f, read(f)))).toEqual([]);
  });

  test("transport/, platform/ and runtime/ never import agent/ or host/", () => {
    const files = [...sourceFiles("transport"), ...sourceFiles("platform"), ...sourceFiles("runtime")];
    expect(files.length).toBeGreaterThan(0);
    expect(files.flatMap((f) => upwardViolations(f, read(f)))).toEqual([]);
  });
});

describe("the checker itself", () => {
  const sample = [
    'import { a } from "./ok.ts";', // 1
    'import type { B } from "../../platform/platform.ts";', // 2
    "import {", // 3
    "  c,", // 4
    '} from "node:fs";', // 5
    'import "bun:sqlite";', // 6
    'export * from "../noise/x.ts";', // 7
    'const m = await import("../../agent/config.ts");', // 8
    "// import { gone } from 'node:os'; Bun.spawn(); process.exit()", // 9
    "/* Buffer.from(x) */ const t = Bun.file(p);", // 10
    "const n = process.env.X ?? Buffer.alloc(1);", // 11
    'const s = "see Bun. docs"; const o = obj.process.x; import { n } from "@noble/hashes/sha2.js";', // 12
    "const r = require('fs'); const d = import.meta.dir;", // 13
  ].join("\n");
  const found = coreViolations("core/session/sample.ts", sample);

  test("finds each kind of violation with its line", () => {
    const lines = found.map((v) => Number(v.split(":")[1])).sort((a, b) => a - b);
    expect(lines).toEqual([2, 5, 6, 8, 10, 11, 11, 13, 13, 13]);
    expect(found.join("\n")).toContain("core/session/sample.ts:5: imports node:fs");
  });

  test("ignores comments, property names and allowed imports", () => {
    for (const line of [1, 7, 9, 12]) expect(found.some((v) => v.includes(`sample.ts:${line}:`))).toBe(false);
  });

  test("spots an upward import from transport/", () => {
    expect(upwardViolations("transport/tcp.ts", 'import { x } from "../host/daemon/daemon.ts";')).toEqual([
      "transport/tcp.ts:1: imports ../host/daemon.ts (host/ is a higher layer)",
    ]);
    expect(upwardViolations("platform/bun.ts", 'import { x } from "../core/errors.ts";')).toEqual([]);
  });
});
