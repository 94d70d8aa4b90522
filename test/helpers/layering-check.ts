/**
 * The checkers behind test/layering.test.ts: given the graph as data (placed folders, allowed
 * edges, finer rules), each turns one file's text into violations "file:line: what". They are
 * pure functions of their arguments (only filesUnder and closureOf read the tree), so the test
 * can check them on samples. The graph itself lives in the test file, never here.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { importsOf, stripComments, targetOf } from "./source-imports.ts";

/** `from` files may import `to` files. */
export interface Edge {
  readonly from: string;
  readonly to: string;
  readonly why: string;
  /** When only some files of `to` may be imported: root-relative paths. */
  readonly only?: readonly string[];
}

/** Finer rules inside a folder: files under `files` never import under `never`. */
export interface Rule {
  readonly files: string;
  /** Files under `files` that the rule does not cover (prefixes). */
  readonly notFiles?: readonly string[];
  readonly never: readonly string[];
  readonly why: string;
  /** Known, reasoned exceptions: [importing file, imported file]. */
  readonly except?: readonly (readonly [string, string])[];
}

export interface Graph {
  /** The repository root, to resolve relative imports. */
  readonly root: string;
  /** Top-level folder -> what it is. */
  readonly folders: Readonly<Record<string, string>>;
  readonly edges: readonly Edge[];
  /** Extra edges for *.test.ts files only. */
  readonly testEdges: readonly Edge[];
  readonly rules: readonly Rule[];
}

export const isTest = (file: string) => /\.test\.[a-z]+$/.test(file);
const topOf = (path: string) => path.split("/")[0]!;

/** Imports from `file` into another top-level folder that no edge allows. */
export function edgeViolations(g: Graph, file: string, src: string): string[] {
  const from = topOf(file);
  const out: string[] = [];
  const allowed = isTest(file) ? [...g.edges, ...g.testEdges] : g.edges;
  for (const { spec, line } of importsOf(stripComments(src))) {
    if (!spec.startsWith(".")) continue;
    const target = targetOf(g.root, file, spec);
    const to = topOf(target);
    if (to === from) continue;
    if (!(to in g.folders)) {
      out.push(`${file}:${line}: imports ${spec}, outside every placed folder`);
      continue;
    }
    const ok = allowed.some((e) => e.from === from && e.to === to && (!e.only || e.only.includes(target)));
    if (!ok) out.push(`${file}:${line}: imports ${spec} (no edge ${from}/ -> ${target})`);
  }
  return out;
}

/** Imports that break a finer rule; test files are wiring and exempt. */
export function ruleViolations(g: Graph, file: string, src: string): string[] {
  if (isTest(file)) return [];
  const out: string[] = [];
  const applies = g.rules.filter(
    (r) => file.startsWith(r.files) && !r.notFiles?.some((n) => file.startsWith(n)),
  );
  if (applies.length === 0) return out;
  for (const { spec, line } of importsOf(stripComments(src))) {
    if (!spec.startsWith(".")) continue;
    const target = targetOf(g.root, file, spec);
    for (const r of applies) {
      if (!r.never.some((n) => target.startsWith(n))) continue;
      if (r.except?.some(([f, t]) => f === file && t === target)) continue;
      out.push(`${file}:${line}: imports ${spec} (${r.why})`);
    }
  }
  return out;
}

/** Code (not comments) naming a path in test/: a spawned file is a dependency too. */
export function testPathViolations(file: string, src: string): string[] {
  const out: string[] = [];
  stripComments(src)
    .split("\n")
    .forEach((text, i) => {
      if (/(?:^|["'`/])test\/[\w.-]+/.test(text)) out.push(`${file}:${i + 1}: names a path in test/`);
    });
  return out;
}

/** Top-level folders holding TypeScript that `folders` does not place. */
export function unplacedFolders(
  tops: readonly { name: string; hasTs: boolean }[],
  folders: Readonly<Record<string, string>>,
): string[] {
  return tops.filter((t) => t.hasTs && !(t.name in folders)).map((t) => t.name);
}

/** One cycle among the edges' folders, or null. */
export function findCycle(edges: readonly Pick<Edge, "from" | "to">[]): string[] | null {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, "open" | "done">();
  const walk = (node: string, path: string[]): string[] | null => {
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    if (state.get(node) === "done") return null;
    state.set(node, "open");
    for (const n of next.get(node) ?? []) {
      const c = walk(n, [...path, node]);
      if (c) return c;
    }
    state.set(node, "done");
    return null;
  };
  for (const node of next.keys()) {
    const c = walk(node, []);
    if (c) return c;
  }
  return null;
}

const FORBIDDEN_GLOBALS: readonly [RegExp, string][] = [
  [/(?:^|[^.\w$])Bun\s*[.[]/, "Bun."],
  [/(?:^|[^.\w$])process\s*[.[]/, "process."],
  [/(?:^|[^.\w$])Buffer\b/, "Buffer"],
  [/(?:^|[^.\w$])require\s*\(/, "require("],
  [/\bimport\s*\.\s*meta\b/, "import.meta"],
  [/\bglobalThis\s*\.\s*(?:Bun|process|Buffer|require)\b/, "globalThis runtime global"],
];

/** The core/ rules: imports only core/ and @noble/*, no runtime globals. */
export function coreViolations(root: string, file: string, src: string): string[] {
  const code = stripComments(src);
  const bare = stripComments(src, true);
  const out: string[] = [];
  for (const { spec, line } of importsOf(code)) {
    if (spec.startsWith("@noble/")) continue;
    if (spec.startsWith(".")) {
      if (topOf(targetOf(root, file, spec)) === "core") continue;
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

export const SKIP_DIRS = new Set(["node_modules", "dist", ".git"]);
export const SOURCE = /\.(ts|tsx|mts|js|mjs)$/;

/** Source files under `dir` (root-relative, "/"-separated), declaration files left out. */
export function filesUnder(root: string, dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    if (SKIP_DIRS.has(e.name) || e.name.startsWith(".")) continue;
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...filesUnder(root, rel));
    else if (SOURCE.test(e.name) && !e.name.endsWith(".d.ts")) out.push(rel);
  }
  return out.sort();
}

/** Every source file `entry` reaches through relative imports (type imports included). */
export function closureOf(root: string, entry: string, read: (file: string) => string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file) || !SOURCE.test(file)) continue;
    seen.add(file);
    for (const { spec } of importsOf(stripComments(read(file)))) {
      if (spec.startsWith(".")) todo.push(targetOf(root, file, spec));
    }
  }
  return seen;
}
