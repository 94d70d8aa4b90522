/**
 * `copy-from` cleans up after itself on every fault it lives through (calls/qfile-unpack.ts
 * removes its temporary file on EOF, errors and Ctrl-C), but a copy-from killed with SIGKILL (or
 * a power cut) leaves its one `.qfile-<pid>-<16 hex>.part` in the destination. The next
 * copy-from into that directory removes such leftovers before it starts.
 *
 * A file is removed only when all of these hold: its name is exactly the pattern our unpacker
 * gives host temporary files (with the writer's pid in it), it is a regular file (lstat: a link
 * is never followed or removed), and the process that made it is gone: no process has that pid,
 * or the one that has it started after the file was made (the pid was reused). A live copy-from
 * writing into the same directory keeps its file: its process is older than the file.
 * Must never: remove a file of any other name (the user's files, the device's `.qfile-<hex>.part`
 * names), follow a symbolic link, or remove a file whose writer may still be running (doubt
 * keeps the file).
 */
import type { Dirent } from "node:fs";
import { readFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";

/** The temporary name copy-from's unpacker uses (calls/qfile-unpack.ts tempOwner). */
const HOST_PART_NAME = /^\.qfile-([1-9][0-9]{0,9})-[0-9a-f]{16}\.part$/;
/**
 * Process start times are known to the clock tick and boot time to the second: a file counts
 * as older than a process only by more than this, so rounding can only keep a file, never
 * remove a live one.
 */
const START_TIME_SLACK_MS = 2000;

/** When process `pid` started (ms since the epoch), or null if there is no such process. */
export function processStartMs(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Field 22 (starttime, clock ticks after boot); the name in () may hold spaces.
  const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const btime = Number(readFileSync("/proc/stat", "utf8").match(/^btime (\d+)$/m)?.[1]);
  // USER_HZ is 100 on every Linux ABI (the kernel converts to it for /proc).
  return btime * 1000 + (ticks * 1000) / 100;
}

/** Whether the writer `pid` of a file made at `madeMs` is gone (startOf: processStartMs). */
export function writerGone(
  pid: number,
  madeMs: number,
  startOf: (pid: number) => number | null = processStartMs,
): boolean {
  if (pid === process.pid) return false; // ours, in this very run
  const started = startOf(pid);
  if (started === null) {
    // No /proc entry: gone, unless /proc itself is not there (then we cannot tell: keep).
    try {
      readFileSync("/proc/self/stat");
    } catch {
      return false;
    }
    return true;
  }
  return started > madeMs + START_TIME_SLACK_MS;
}

/** Removes copy-from temporaries whose writer is gone, anywhere under `dir`; returns how many. */
export async function removeOrphanedParts(
  dir: string,
  startOf: (pid: number) => number | null = processStartMs,
): Promise<number> {
  let removed = 0;
  const stack = [dir];
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      continue; // absent or unreadable: nothing of ours to clean there
    }
    for (const entry of entries) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) {
        stack.push(path);
        continue;
      }
      const m = HOST_PART_NAME.exec(entry.name);
      if (!m || !entry.isFile()) continue;
      try {
        const st = await fsp.lstat(path);
        if (!st.isFile()) continue;
        const madeMs = st.birthtimeMs > 0 ? st.birthtimeMs : st.ctimeMs;
        if (!writerGone(Number(m[1]), madeMs, startOf)) continue;
        await fsp.unlink(path);
        removed++;
      } catch {
        // gone meanwhile, or not ours to remove: leave it
      }
    }
  }
  return removed;
}
