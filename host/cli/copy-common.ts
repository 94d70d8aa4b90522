/**
 * What copy-to and copy-from share: a call through the daemon whose stdin the caller writes
 * itself and whose stdout is read as a ByteSource (for the qfile packer and unpacker), with the
 * callee's stderr passed to ours; and qvm-copy's progress line.
 * Must never: leave the packer or unpacker waiting once the call is over. When the call ends
 * (an exit status, or the link broke), stdout gets its EOF and stdin refuses further writes, so
 * a cut link ends the copy instead of hanging it. A broken call is said in one line of our own
 * words (brokenCopyLine) and exits 125; errnos are said in words, never as a bare number.
 */

import { type CallResult, runCall } from "../../calls/caller.ts";
import { qfileErrorMessage } from "../../core/qrexec/qfile.ts";
import { errnoWords } from "../../platform/errno-words.ts";
import { memoryPair } from "../../transport/memory.ts";
import {
  type ByteSink,
  type ByteSource,
  type ByteStream,
  TransportError,
} from "../../transport/transport.ts";
import { type CallTarget, openDaemonCall } from "./client.ts";
import { fdSink } from "./stdio.ts";

export interface FileCall {
  /** The call's stdin: closeWrite() is its EOF; close() only ends our writing. */
  readonly stdin: ByteSink;
  /** The callee's stdout. */
  readonly stdout: ByteSource;
  /** Settles once the exit status arrived (or the call broke). */
  readonly result: Promise<CallResult>;
  /** After the stdout consumer is done: unread output is dropped instead of blocking the call. */
  finishReading(): void;
  /**
   * Stops our side (Ctrl-C): stdin refuses further writes and stdout ends, so the packer or
   * unpacker stops; the caller then half-closes stdin and the callee sees its input end.
   */
  abort(): void;
}

export async function openFileCall(socket: string, target: CallTarget): Promise<FileCall> {
  const channel: ByteStream = await openDaemonCall(socket, target);
  const [outW, outR] = memoryPair({ name: "call stdout" });
  const result = runCall(
    channel,
    { stdin: "caller", stdout: outW, stderr: fdSink(2, "stderr", false) },
    { closeStdoutAtEof: true },
  );
  let over = false;
  const end = () => {
    over = true;
    void outW.closeWrite(); // an EOF the consumer sees even when the call broke mid-output
  };
  void result.then(end);
  const stdin: ByteSink = {
    description: "call stdin",
    closed: channel.closed,
    write: (d) =>
      over
        ? Promise.reject(new TransportError("call stdin: the call is over", "write-closed"))
        : channel.write(d),
    closeWrite: () => channel.closeWrite(),
    close: () => void channel.closeWrite().catch(() => {}),
  };
  return {
    stdin,
    stdout: outR,
    result,
    finishReading: () => outR.close(),
    abort: () => {
      end();
      outR.close();
    },
  };
}

export function kib(bytes: number): number {
  return Math.ceil(bytes / 1024);
}

/** Progress lines only for copies long enough to need them. */
export const PROGRESS_MIN_BYTES = 1024 * 1024;

/**
 * The one line for a copy whose call ended without an exit status. The socket carries no reason,
 * so the link dropping (or the agent dying) and the daemon dying look the same from here.
 */
export function brokenCopyLine(direction: "to" | "from", remote: string): string {
  const kept = direction === "from" ? " (incomplete files were not kept)" : "";
  return (
    `qubes-air: the copy ${direction} ${remote} broke off: the link or the daemon went away${kept}; ` +
    `run it again when \`qubes-air list\` shows ${remote} up\n`
  );
}

/** qfile's wording of a receiver's code; a code it has no words for is worded by the system. */
export function copyErrorLine(code: number, lastName: Uint8Array | null): string {
  return `qubes-air: ${qfileErrorMessage(code, lastName, errnoWords(code))}\n`;
}

/**
 * Runs `work` with SIGINT and SIGTERM turned into `onSignal` (the copy stops and cleans up
 * instead of dying with a half-written file); also returns the signal that came, if any.
 */
export async function withSignals<T>(
  onSignal: () => void,
  work: () => Promise<T>,
): Promise<{ value: T; signal: NodeJS.Signals | null }> {
  let signal: NodeJS.Signals | null = null;
  const stop = (s: NodeJS.Signals) => {
    signal ??= s;
    onSignal();
  };
  process.on("SIGINT", stop).on("SIGTERM", stop);
  try {
    const value = await work();
    return { value, signal };
  } finally {
    process.off("SIGINT", stop).off("SIGTERM", stop);
  }
}
