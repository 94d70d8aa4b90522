/**
 * The start-up sweep of the device's incoming tree: removes the `.qfile-<16 hex>.part` temporary
 * files (calls/qfile-unpack.ts) that a receiver killed mid-copy (kill -9, power cut) left under
 * <incomingDir>/QubesIncoming/. A receiver that merely saw its input end removes its own; only
 * a process that died cannot. It runs before the agent listens, so no copy is in progress and
 * no temporary file in use can be removed.
 * Must never: follow a symbolic link (a sender may have made links to anywhere), remove anything
 * but a regular file with exactly a receiver's temporary name, or keep the agent from starting
 * (a failure is counted and logged, not thrown).
 */
import type { Dirent } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";

/** The names calls/qfile-unpack.ts gives its temporary files. */
const PART_NAME = /^\.qfile-[0-9a-f]{16}\.part$/;

export interface CleanupResult {
  /** Temporary files removed. */
  readonly removed: number;
  /** Directories that could not be read and files that could not be removed. */
  readonly failed: number;
}

/** Removes stale temporary files anywhere under `dir` (absent: nothing to do). */
export async function removeStaleParts(dir: string): Promise<CleanupResult> {
  let removed = 0;
  let failed = 0;
  // An explicit stack, not recursion: a sender can make the tree as deep as names allow.
  const stack = [dir];
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch (e) {
      if (d !== dir || (e as { code?: string }).code !== "ENOENT") failed++;
      continue;
    }
    for (const entry of entries) {
      // Dirent types come from lstat-like d_type: a link to a directory is a link, not followed.
      if (entry.isDirectory()) stack.push(join(d, entry.name));
      else if (entry.isFile() && PART_NAME.test(entry.name)) {
        try {
          await fsp.unlink(join(d, entry.name));
          removed++;
        } catch {
          failed++;
        }
      }
    }
  }
  return { removed, failed };
}
