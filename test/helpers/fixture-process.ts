/**
 * Spawns a fixture program as a real process and reads its JSON-line events (see
 * test/fixtures/link-peer.ts). Waiting is event-driven: no sleeps. Every process started here is
 * killed by killAll(), which tests call in afterEach.
 */
import type { Subprocess } from "bun";

export interface FixtureProcess {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  /** The next event matching pred (events already seen are searched first). */
  waitFor(pred: (e: Record<string, unknown>) => boolean, what?: string): Promise<Record<string, unknown>>;
  send(line: string): void;
  readonly events: Record<string, unknown>[];
  readonly exited: Promise<number>;
  stderr(): Promise<string>;
}

const running = new Set<Subprocess>();

export function spawnFixture(script: string, args: string[]): FixtureProcess {
  const proc = Bun.spawn([process.execPath, script, ...args], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  const events: Record<string, unknown>[] = [];
  const waiters: {
    pred: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
  }[] = [];
  let consumed = 0;
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of proc.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const event = JSON.parse(line) as Record<string, unknown>;
        events.push(event);
        for (const w of [...waiters]) {
          if (w.pred(event)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(event);
          }
        }
      }
    }
  })();
  const exited = proc.exited.then((code) => {
    running.delete(proc);
    return code;
  });
  return {
    proc,
    events,
    exited,
    stderr: () => new Response(proc.stderr).text(),
    send(line) {
      proc.stdin.write(`${line}\n`);
      proc.stdin.flush();
    },
    waitFor(pred, what = "event") {
      const seen = events.slice(consumed).find(pred);
      if (seen) {
        consumed = events.indexOf(seen) + 1;
        return Promise.resolve(seen);
      }
      return new Promise((resolve, reject) => {
        waiters.push({
          pred,
          resolve: (e) => {
            consumed = events.indexOf(e) + 1;
            resolve(e);
          },
        });
        void exited.then((code) => reject(new Error(`process exited (${code}) before ${what}`)));
      });
    },
  };
}

export function killAll(): void {
  for (const p of running) p.kill();
  running.clear();
}
