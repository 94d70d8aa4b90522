/**
 * The IK timestamp source against a clock that jumps back, a file from a clock that ran ahead,
 * and a daemon killed at every point around a write: a value is on disk before it is handed
 * out, a failed write hands out nothing, and a restart never repeats a value handed out before.
 */
import { describe, expect, test } from "bun:test";
import { type TimestampDeps, TimestampSource } from "./timestamps.ts";

const PATH = "/state/ik-timestamp";
const MS = 1_800_000_000_000; // a wall clock, ms

/** A disk of one file, a settable clock, and a log of what happened in which order. */
function fakeDeps(clock: { ms: number }, disk: Map<string, string>, events: string[]): TimestampDeps {
  return {
    async writeFileAtomic(path, data) {
      events.push(`write ${data.trim()}`);
      disk.set(path, data);
    },
    async readFile(path) {
      const text = disk.get(path);
      if (text === undefined) throw Object.assign(new Error("no file"), { code: "ENOENT" });
      return new TextEncoder().encode(text);
    },
    now: () => clock.ms,
  };
}

describe("TimestampSource", () => {
  test("the clock jumping back continues from last + 1", async () => {
    const clock = { ms: MS };
    const disk = new Map<string, string>();
    const ts = new TimestampSource(PATH, fakeDeps(clock, disk, []));
    const first = await ts.next();
    expect(first).toBe(BigInt(MS) * 1000n);
    clock.ms -= 3_600_000; // an hour back
    expect(await ts.next()).toBe(first + 1n);
    expect(await ts.next()).toBe(first + 2n);
    clock.ms = MS + 1;
    expect(await ts.next()).toBe(BigInt(MS + 1) * 1000n);
  });

  test("a file far in the future, with the clock behind: the next value is still above it", async () => {
    const clock = { ms: MS };
    const future = BigInt(MS + 10 * 365 * 86_400_000) * 1000n;
    const disk = new Map([[PATH, `${future}\n`]]);
    const ts = new TimestampSource(PATH, fakeDeps(clock, disk, []));
    expect(await ts.next()).toBe(future + 1n);
    expect(disk.get(PATH)).toBe(`${future + 1n}\n`);
  });

  test("a value is persisted before it is handed out; a restart after any use never repeats it", async () => {
    const clock = { ms: MS };
    const disk = new Map<string, string>();
    const events: string[] = [];
    const deps = fakeDeps(clock, disk, events);
    const used: bigint[] = [];
    for (let restart = 0; restart < 5; restart++) {
      // a fresh daemon each time (killed right after sending), the clock frozen: only the file
      // can keep the next value above the last one sent
      const ts = new TimestampSource(PATH, deps);
      const v = await ts.next();
      events.push(`send ${v}`);
      used.push(v);
    }
    for (let i = 1; i < used.length; i++) expect(used[i]! > used[i - 1]!).toBe(true);
    // every send follows the write of the same value
    for (let i = 0; i < events.length; i += 2) {
      expect(events[i + 1]!.replace("send", "write")).toBe(events[i]!);
    }
  });

  test("while the write is pending nothing is handed out; a failed write hands out nothing", async () => {
    const clock = { ms: MS };
    const disk = new Map<string, string>();
    const writes: { data: string; done(error?: Error): void }[] = [];
    let wake: (() => void) | null = null;
    const deps: TimestampDeps = {
      ...fakeDeps(clock, disk, []),
      writeFileAtomic: (path, data) =>
        new Promise<void>((resolve, reject) => {
          writes.push({
            data,
            done(error) {
              if (error) return reject(error);
              disk.set(path, data);
              resolve();
            },
          });
          wake?.();
        }),
    };
    const pendingWrite = async () => {
      while (writes.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return writes.shift()!;
    };
    const ts = new TimestampSource(PATH, deps);
    let handed: bigint | null = null;
    const first = ts.next().then((v) => (handed = v));
    const w1 = await pendingWrite();
    expect(handed).toBeNull(); // a daemon killed now has sent nothing, and nothing is on disk
    expect(disk.has(PATH)).toBe(false);
    w1.done();
    const v1 = await first;
    expect(disk.get(PATH)).toBe(`${v1}\n`);

    const failing = ts.next().catch((e: unknown) => e);
    (await pendingWrite()).done(Object.assign(new Error("disk full"), { code: "ENOSPC" }));
    expect(((await failing) as { code?: string }).code).toBe("ENOSPC");

    // after a failed write, and after a restart, the next value is still above every one used
    const third = ts.next();
    (await pendingWrite()).done();
    expect((await third) > v1).toBe(true);
    const restarted = new TimestampSource(PATH, deps).next();
    (await pendingWrite()).done();
    expect((await restarted) > (await third)).toBe(true);
  });
});
