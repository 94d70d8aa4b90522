/**
 * A minimal YAML writer for cloud-init files: maps, lists, scalars (strings always JSON-quoted,
 * which YAML reads as double-quoted scalars, so no value is ever misread as a number, a boolean
 * or a tag), nested lists as JSON flow sequences, and literal blocks (`|`) for file contents.
 * Pure. Must never: emit a key that is not a plain identifier.
 */

export class Literal {
  constructor(readonly text: string) {}
}

export type YamlValue =
  | string
  | number
  | boolean
  | null
  | Literal
  | readonly YamlValue[]
  | { readonly [key: string]: YamlValue };

const KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function scalar(v: YamlValue): string | null {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error("yaml: not a finite number");
    return String(v);
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v) && v.every((x) => typeof x === "string"))
    return JSON.stringify(v).replace(/","/g, '", "');
  return null;
}

function literal(l: Literal, indent: string): string {
  const body = l.text.endsWith("\n") ? l.text.slice(0, -1) : l.text;
  if (/^[ \t]/.test(body) || body.includes("\r")) return ` ${JSON.stringify(l.text)}`;
  const chomp = l.text.endsWith("\n") ? "" : "-";
  const lines = body.split("\n").map((line) => (line === "" ? "" : `${indent}  ${line}`));
  return ` |${chomp}\n${lines.join("\n")}`;
}

function emit(v: YamlValue, indent: string): string[] {
  if (Array.isArray(v)) {
    const out: string[] = [];
    for (const item of v as YamlValue[]) {
      const s = item instanceof Literal ? null : scalar(item);
      if (s !== null) out.push(`${indent}- ${s}`);
      else if (Array.isArray(item)) out.push(`${indent}- ${JSON.stringify(item)}`);
      else {
        const inner = emit(item, `${indent}  `);
        out.push(`${indent}- ${inner[0]!.trimStart()}`, ...inner.slice(1));
      }
    }
    return out;
  }
  if (v !== null && typeof v === "object" && !(v instanceof Literal)) {
    const out: string[] = [];
    for (const [key, value] of Object.entries(v)) {
      if (!KEY.test(key)) throw new Error(`yaml: bad key ${JSON.stringify(key)}`);
      if (value instanceof Literal) {
        out.push(`${indent}${key}:${literal(value, indent)}`);
        continue;
      }
      const s = scalar(value);
      if (s !== null) out.push(`${indent}${key}: ${s}`);
      else if (Array.isArray(value) && value.length === 0) out.push(`${indent}${key}: []`);
      else out.push(`${indent}${key}:`, ...emit(value, `${indent}  `));
    }
    return out;
  }
  throw new Error("yaml: a document must be a map or a list");
}

/** A YAML document; `header` lines come first (e.g. "#cloud-config" and comments). */
export function toYaml(doc: YamlValue, header: readonly string[] = []): string {
  return `${[...header, ...emit(doc, "")].join("\n")}\n`;
}
