/**
 * The flasher's process I/O, for `qubes-air flash` (host/cli/flash.ts) and for the flasher as
 * its own program (`bun images/flash-main.ts IMAGE DEVICE`, through the CLI kit): real
 * stdin/stdout/stderr, and Ctrl-C (SIGINT) aborts the write cleanly — the flasher stops after
 * the current chunk, syncs, reports and exits 130 (EXIT.INTERRUPTED). Further Ctrl-Cs only say
 * it is stopping: killing it mid-sync helps nobody.
 */
import { createInterface } from "node:readline";
import { type FlashDeps, type FlashIO, flashCommand } from "./flash.ts";

export function processFlashIO(): { io: FlashIO; dispose: () => void } {
  const ac = new AbortController();
  const onSigint = () => {
    if (ac.signal.aborted) {
      process.stderr.write("\nstill stopping (syncing the target); please wait\n");
      return;
    }
    process.stderr.write("\nstopping after the current chunk...\n");
    ac.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSigint);
  const io: FlashIO = {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    errIsTTY: process.stderr.isTTY === true,
    signal: ac.signal,
    readLine(prompt) {
      const rl = createInterface({
        input: process.stdin,
        output: process.stderr,
        terminal: process.stdin.isTTY,
      });
      // On a terminal readline catches Ctrl-C itself; treat it as ours.
      rl.on("SIGINT", onSigint);
      return new Promise((resolve) => {
        let answered = false;
        rl.question(prompt, (line) => {
          answered = true;
          rl.close();
          resolve(line);
        });
        rl.on("close", () => {
          if (!answered) resolve(null);
        });
        ac.signal.addEventListener("abort", () => rl.close(), { once: true });
      });
    },
  };
  return { io, dispose: () => process.off("SIGINT", onSigint) };
}

export async function flashMain(argv: readonly string[], deps: FlashDeps = {}): Promise<number> {
  const { io, dispose } = processFlashIO();
  try {
    return await flashCommand(argv, io, deps);
  } finally {
    dispose();
  }
}

if (import.meta.main) {
  process.exitCode = await flashMain(process.argv.slice(2));
}
