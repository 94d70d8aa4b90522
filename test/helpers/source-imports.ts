/**
 * Reads a TypeScript source's imports from its text, for test/layering.test.ts: a small scanner,
 * enough for our own sources, that never executes or resolves anything. It must stay a pure
 * text function (no file access) so the layering checker can test it on samples.
 */
import { dirname, relative, resolve, sep } from "node:path";

/**
 * Blanks comments (keeping newlines, so offsets and line numbers stay put), and with `strings`
 * also the contents of '...' and "..." literals. Template literals are left as code (their
 * ${...} parts are code; a false alarm in their text is harmless).
 */
export function stripComments(src: string, strings = false): string {
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

export interface Import {
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

/** The import specifiers of a source whose comments are already blanked, with their lines. */
export function importsOf(code: string): Import[] {
  const found = new Map<number, Import>();
  for (const pattern of IMPORT_PATTERNS) {
    for (const m of code.matchAll(pattern)) {
      const at = m.index + m[0].lastIndexOf(m[2]!);
      found.set(at, { spec: m[2]!, line: code.slice(0, at).split("\n").length });
    }
  }
  return [...found.values()].sort((a, b) => a.line - b.line);
}

/** A relative import of `file` (a root-relative path) as a root-relative target path. */
export function targetOf(root: string, file: string, spec: string): string {
  return relative(root, resolve(root, dirname(file), spec))
    .split(sep)
    .join("/");
}
