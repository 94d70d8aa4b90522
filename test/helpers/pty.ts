/**
 * A real pty pair for transport tests: `socat` joins two ptys, and each end is a path a process
 * opens like a USB-serial tty (/dev/ttyACM0 on the host, /dev/ttyGS0 on the device). Readiness
 * comes from socat's own log lines, never from sleeping. Runs on the platform layer, so the same
 * helper works in Bun tests and in the Node bundle.
 *
 * Must never leave socat running: close() kills it and waits for it (call it in afterEach).
 */

import * as fs from "node:fs";
import * as path from "node:path";
import { platform } from "../../platform/index.ts";
import type { ChildProcess } from "../../platform/platform.ts";

export interface PtyPair {
  /** The two ends (/dev/pts/N). */
  readonly a: string;
  readonly b: string;
  readonly socatPid: number;
  /** Kills socat: both ends hang up, so readers get EIO (our streams: EOF). Waits for its exit. */
  hangup(): Promise<void>;
  /** hangup(), idempotent. */
  close(): Promise<void>;
}

export function hasSocat(): boolean {
  const dirs = (process.env.PATH ?? "/usr/bin:/bin").split(path.delimiter);
  return dirs.some((d) => d && fs.existsSync(path.join(d, "socat")));
}

const READY_TIMEOUT_MS = 5000;

/**
 * Starts `socat -d -d pty,raw,echo=0 pty,raw,echo=0` and resolves once it logged both pty paths
 * and "starting data transfer loop", i.e. bytes written to `a` now come out of `b` and back.
 */
export async function ptyPair(): Promise<PtyPair> {
  const child = await platform.spawn(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  let closing: Promise<void> | null = null;
  const hangup = () => {
    closing ??= (async () => {
      child.kill("SIGTERM");
      await child.exited;
    })();
    return closing;
  };
  const timer = setTimeout(() => void hangup(), READY_TIMEOUT_MS);
  try {
    const paths = await readyPaths(child);
    return { a: paths[0], b: paths[1], socatPid: child.pid, hangup, close: hangup };
  } catch (e) {
    await hangup();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function readyPaths(child: ChildProcess): Promise<[string, string]> {
  const err = child.stderr!;
  const decoder = new TextDecoder();
  let log = "";
  for (;;) {
    const paths = [...log.matchAll(/PTY is (\/dev\/\S+)/g)].map((m) => m[1]!);
    if (paths.length >= 2 && log.includes("starting data transfer loop")) {
      // Keep draining socat's log so it never blocks on a full pipe.
      void (async () => {
        while (await err.read()) {}
      })().catch(() => {});
      return [paths[0]!, paths[1]!];
    }
    const c = await err.read();
    if (!c) throw new Error(`socat did not make a pty pair (is it installed?): ${log.trim()}`);
    log += decoder.decode(c, { stream: true });
  }
}
