/**
 * A plan of what goes into the image's root filesystem (files with content or from a host file,
 * directories, symlinks, removals), and applying it to an Ext4Image in one debugfs run:
 * missing parent directories are created (root-owned, 0755 unless the plan says otherwise),
 * existing files at a planned path are replaced, and everything is owned by root unless stated.
 * Must never: replace a directory with a file, or leave a planned path with the builder's uid.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { ImageError } from "./common.ts";
import { Ext4Batch, type Ext4Image, type InodeInfo } from "./ext4.ts";

export type RootEntry =
  | {
      kind: "file";
      path: string;
      mode: number;
      uid?: number;
      gid?: number;
      /** Content, or a host file to copy (large binaries). */
      data: string | Uint8Array | { file: string };
    }
  | { kind: "dir"; path: string; mode: number; uid?: number; gid?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "remove"; path: string };

export const file = (
  path: string,
  mode: number,
  data: string | Uint8Array | { file: string },
  owner: { uid?: number; gid?: number } = {},
): RootEntry => ({ kind: "file", path, mode, data, ...owner });
export const dir = (path: string, mode = 0o755): RootEntry => ({ kind: "dir", path, mode });
export const symlink = (path: string, target: string): RootEntry => ({ kind: "symlink", path, target });
export const remove = (path: string): RootEntry => ({ kind: "remove", path });

function parents(path: string): string[] {
  const out: string[] = [];
  for (let p = posix.dirname(path); p !== "/"; p = posix.dirname(p)) out.unshift(p);
  return out;
}

/** Bytes the plan adds (file contents), for the free-space check. */
export function planBytes(plan: readonly RootEntry[]): number {
  let n = 0;
  for (const e of plan) {
    if (e.kind !== "file") continue;
    const d = e.data;
    n +=
      typeof d === "string"
        ? Buffer.byteLength(d)
        : d instanceof Uint8Array
          ? d.length
          : statSync(d.file).size;
    n += 4096;
  }
  return n;
}

/** Bytes freed by replacing files the image already has at planned paths (a rebuild). */
export function replacedBytes(fs: Ext4Image, plan: readonly RootEntry[]): number {
  const paths = plan.filter((e) => e.kind === "file" || e.kind === "remove").map((e) => e.path);
  let n = 0;
  for (const info of fs.statMany(paths).values()) if (info?.type === "regular") n += info.size;
  return n;
}

export function applyPlan(fs: Ext4Image, plan: readonly RootEntry[]): void {
  const dirModes = new Map<string, { mode: number; uid?: number; gid?: number }>();
  for (const e of plan) if (e.kind === "dir") dirModes.set(e.path, e);
  const wantedDirs = new Set<string>();
  for (const e of plan) {
    if (e.kind !== "remove") for (const p of parents(e.path)) wantedDirs.add(p);
    if (e.kind === "dir") wantedDirs.add(e.path);
  }
  const targets = plan.filter((e) => e.kind !== "dir").map((e) => e.path);
  const sortedDirs = [...wantedDirs].sort((a, b) => a.split("/").length - b.split("/").length);
  const existing = fs.statMany([...sortedDirs, ...targets]);

  const tmp = mkdtempSync(join(tmpdir(), "qa-rootfs-"));
  try {
    const batch = new Ext4Batch();
    for (const d of sortedDirs) {
      const info = existing.get(d);
      const want = dirModes.get(d);
      if (info && info.type !== "directory" && info.type !== "symlink") {
        throw new ImageError(`${d} in the image is a ${info.type}, not a directory`);
      }
      if (!info) batch.mkdir(d, want ?? { mode: 0o755 });
      else if (want && info.type === "directory" && !sameOwner(info, want)) {
        batch.commands.push(
          `sif ${d} mode 0${(0o040000 | want.mode).toString(8)}`,
          `sif ${d} uid ${want.uid ?? 0}`,
          `sif ${d} gid ${want.gid ?? 0}`,
        );
      }
    }
    let n = 0;
    for (const e of plan) {
      if (e.kind === "dir") continue;
      const info = existing.get(e.path);
      if (info?.type === "directory") throw new ImageError(`${e.path} in the image is a directory`);
      if (info) batch.rm(e.path);
      if (e.kind === "symlink") batch.symlink(e.path, e.target);
      else if (e.kind === "file") {
        let source: string;
        if (typeof e.data === "string" || e.data instanceof Uint8Array) {
          source = join(tmp, `f${n++}`);
          writeFileSync(source, e.data, { mode: 0o600 });
        } else source = e.data.file;
        batch.write(e.path, source, statSync(source).size, {
          mode: e.mode,
          ...(e.uid === undefined ? {} : { uid: e.uid }),
          ...(e.gid === undefined ? {} : { gid: e.gid }),
        });
      }
    }
    fs.apply(batch);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function sameOwner(info: InodeInfo, want: { mode: number; uid?: number; gid?: number }): boolean {
  return info.mode === want.mode && info.uid === (want.uid ?? 0) && info.gid === (want.gid ?? 0);
}
