/**
 * A CLI as a process: the context on the real stdout/stderr (synchronous writes, so nothing is
 * lost at exit) and the exit itself. Used by the entry points of `qubes-air`, `qubes-air-agent`,
 * the image builder and the flasher. Works under Bun and Node 18/20 (the Armory's agent bundle).
 * Must never: exit before what was written has reached the file descriptors.
 */
import { writeSync } from "node:fs";
import type { CliContext, Program } from "./command.ts";
import { runProgram } from "./dispatch.ts";

/** Small synchronous writes (help, tables, messages), so nothing is lost at process.exit. */
export function writeAllSync(fd: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let off = 0; off < bytes.length; ) {
    try {
      off += writeSync(fd, bytes, off);
    } catch (e) {
      if ((e as { code?: string }).code !== "EAGAIN") return; // the reader is gone: nothing to tell
    }
  }
}

export function processContext(): CliContext {
  return { env: process.env, out: (t) => writeAllSync(1, t), err: (t) => writeAllSync(2, t) };
}

/** Runs the program on process.argv and exits with its status. */
export async function runMain(program: Program): Promise<never> {
  const status = await runProgram(program, process.argv.slice(2), processContext());
  // Commands that stream through process.stdout/stderr may still hold the last lines.
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  // A finished command must not wait for leftover handles (a pending stdin read, timers).
  process.exit(status);
}

function drained(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0) return Promise.resolve();
  return new Promise<void>((resolve) => stream.write("", () => resolve()));
}
