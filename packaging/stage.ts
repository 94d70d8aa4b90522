/**
 * Lays a package's files out in a staging root (files with their modes, symlinks, owned
 * directories), from dist/ artefacts, packaging/files/ and generated texts.
 * Must never: follow a path out of the staging root, or copy an artefact dist/manifest.json
 * does not vouch for (its sha256 is checked, so a half-built or stale file is never packaged).
 */
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Entry, PackageSpec } from "./layout.ts";

export const FILES = resolve(import.meta.dir, "files");

export interface Manifest {
  readonly version: string;
  readonly artefacts: readonly { file: string; sha256: string }[];
}

function inside(root: string, path: string): string {
  const full = resolve(root, `.${path}`);
  if (!full.startsWith(`${resolve(root)}/`)) throw new Error(`package path ${path} leaves the staging root`);
  return full;
}

export function checkArtefact(dist: string, manifest: Manifest, file: string): string {
  const entry = manifest.artefacts.find((a) => a.file === file);
  if (!entry) throw new Error(`${file} is not in ${dist}/manifest.json: run \`bun run build\` first`);
  const path = join(dist, file);
  const sum = createHash("sha256").update(readFileSync(path)).digest("hex");
  if (sum !== entry.sha256) {
    throw new Error(`${path} does not match dist/manifest.json (sha256): run \`bun run build\` again`);
  }
  return path;
}

function source(e: Entry, dist: string, manifest: Manifest, checked: Map<string, string>): string | Buffer {
  const from = e.from;
  if (!from) throw new Error(`${e.path}: neither a file nor a link`);
  if ("text" in from) return from.text;
  if ("files" in from) return readFileSync(resolve(FILES, from.files));
  let path = checked.get(from.dist);
  if (!path) {
    path = checkArtefact(dist, manifest, from.dist);
    checked.set(from.dist, path);
  }
  return path;
}

/** Stages `spec` under `root`; `extra` adds format-specific files (docs, overrides). */
export function stage(
  spec: PackageSpec,
  root: string,
  dist: string,
  manifest: Manifest,
  checked: Map<string, string>,
  extra: readonly Entry[] = [],
): void {
  for (const d of spec.dirs) {
    const full = inside(root, d.path);
    mkdirSync(full, { recursive: true });
    chmodSync(full, d.mode);
  }
  for (const e of [...spec.entries, ...extra]) {
    const full = inside(root, e.path);
    mkdirSync(dirname(full), { recursive: true });
    if (e.link) {
      symlinkSync(e.link, full);
      continue;
    }
    const src = source(e, dist, manifest, checked);
    if (typeof e.from === "object" && "dist" in e.from) copyFileSync(src as string, full);
    else writeFileSync(full, src);
    chmodSync(full, e.mode);
  }
}
