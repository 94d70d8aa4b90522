/**
 * Where the key lock keeps things (docs/key-lock.md), all derived from the served GnuPG home so
 * gpg-setup and the agent cannot disagree: the sealed subkeys `<home>.sealed`, the sealed full
 * key `<home>.primary.sealed`, the attempt counter `<home>.pin-attempts`. Plus the file helpers
 * both use: reading a private-keys-v1.d, destroying files (overwrite, fsync, unlink), and the
 * check that a directory is on a RAM filesystem.
 * Must never: follow a symlink while destroying, or call a disk-backed directory RAM.
 */

import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import { join } from "node:path";

export interface LockFiles {
  readonly sealed: string;
  readonly primarySealed: string;
  readonly attempts: string;
}

export function lockFilesOf(gnupgHome: string): LockFiles {
  return {
    sealed: `${gnupgHome}.sealed`,
    primarySealed: `${gnupgHome}.primary.sealed`,
    attempts: `${gnupgHome}.pin-attempts`,
  };
}

/** The secret key files of a GnuPG home (private-keys-v1.d/*.key), by name. */
export async function readPrivateKeys(home: string): Promise<Map<string, Uint8Array>> {
  const dir = join(home, "private-keys-v1.d");
  const out = new Map<string, Uint8Array>();
  const names = await fsp.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return [] as string[];
    throw e;
  });
  for (const n of names.sort()) {
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(n)) continue;
    const st = await fsp.lstat(join(dir, n));
    if (st.isFile()) out.set(n, new Uint8Array(await fsp.readFile(join(dir, n))));
  }
  return out;
}

/**
 * Overwrites a regular file with random bytes, fsyncs and unlinks it. On flash (SD cards, eMMC)
 * the controller may keep the old blocks elsewhere: this removes the key from the filesystem, not
 * necessarily from the chip (docs/key-lock.md "What it does not do").
 */
export async function destroyFile(path: string): Promise<boolean> {
  const st = await fsp.lstat(path).catch(() => null);
  if (!st) return false;
  if (st.isFile()) {
    const h = await fsp.open(path, "r+");
    try {
      await h.write(randomBytes(Math.max(st.size, 1)), 0, Math.max(st.size, 1), 0);
      await h.sync();
    } finally {
      await h.close();
    }
  }
  await fsp.unlink(path);
  return true;
}

/** Destroys every regular file below dir (recursively), then removes the tree. */
export async function destroyTree(dir: string): Promise<void> {
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => null);
  if (!entries) return;
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await destroyTree(p);
    else if (e.isFile()) await destroyFile(p).catch(() => {});
  }
  await fsp.rm(dir, { recursive: true, force: true });
}

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/** True when dir lies on tmpfs or ramfs (its contents end with the power). */
export async function onRamFs(dir: string): Promise<boolean> {
  const s = await fsp.statfs(dir);
  return s.type === TMPFS_MAGIC || s.type === RAMFS_MAGIC;
}
