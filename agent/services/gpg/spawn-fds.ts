/**
 * Starting gpg with pipes on fds beyond 0-2 (split-gpg v1's --status-fd, --logger-fd,
 * --attribute-fd and the --verify signature). platform.spawn has only the three standard
 * pipes, so this uses node:child_process, which has the same extra-stdio behaviour under Bun and
 * Node (Bun gives sockets, not pipes, for them: that is why the signature is read through gpg's
 * `-&N` special filename and never as /dev/fd/N).
 * Must never: give the child an fd the request did not ask for.
 */
import * as cp from "node:child_process";
import type { Readable, Writable } from "node:stream";
import type { ExitInfo } from "../../../platform/index.ts";
import { SpawnError } from "../../../platform/index.ts";
import { readableSource, writableSink } from "../../../transport/node-stream.ts";
import type { ByteSink, ByteSource } from "../../../transport/transport.ts";

export interface FdChild {
  readonly pid: number;
  /** Child fd -> our end of the pipe it reads. */
  readonly inputs: ReadonlyMap<number, ByteSink>;
  /** Child fd -> our end of the pipe it writes. */
  readonly outputs: ReadonlyMap<number, ByteSource>;
  readonly exited: Promise<ExitInfo>;
  kill(signal?: NodeJS.Signals): void;
}

export async function spawnWithFds(
  argv: readonly string[],
  o: { env: Record<string, string>; inputFds: readonly number[]; outputFds: readonly number[] },
): Promise<FdChild> {
  const max = Math.max(2, ...o.inputFds, ...o.outputFds);
  const stdio: ("pipe" | "ignore")[] = [];
  for (let fd = 0; fd <= max; fd++) {
    stdio.push(o.inputFds.includes(fd) || o.outputFds.includes(fd) ? "pipe" : "ignore");
  }
  const child = cp.spawn(argv[0]!, argv.slice(1), { env: o.env, stdio });
  const exited = new Promise<ExitInfo>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal: signal ?? null })),
  );
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (e: NodeJS.ErrnoException) => {
      for (const s of child.stdio) s?.destroy();
      reject(new SpawnError(`cannot start ${argv[0]}: ${e.code ?? "error"}`, e.code ?? "EIO", { cause: e }));
    });
  });
  const inputs = new Map<number, ByteSink>();
  const outputs = new Map<number, ByteSource>();
  for (const fd of o.inputFds) inputs.set(fd, writableSink(child.stdio[fd] as Writable, `gpg fd ${fd}`));
  for (const fd of o.outputFds) outputs.set(fd, readableSource(child.stdio[fd] as Readable, `gpg fd ${fd}`));
  return {
    pid: child.pid!,
    inputs,
    outputs,
    exited,
    kill: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}
