/** The caller's end of a call against a callee played on an in-memory channel. */
import { describe, expect, test } from "bun:test";
import { encodeExit, encodeOutput, OutputType } from "../core/qrexec/call-protocol.ts";
import { memoryPair } from "../transport/memory.ts";
import { type ByteSink, TransportError } from "../transport/transport.ts";
import { runCall } from "./caller.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array[]) => new TextDecoder().decode(Buffer.concat(b));

function collector(
  fail?: () => Error,
): Pick<ByteSink, "write" | "closeWrite"> & { parts: Uint8Array[]; closed: boolean } {
  const c = {
    parts: [] as Uint8Array[],
    closed: false,
    write: async (d: Uint8Array) => {
      if (fail) throw fail();
      c.parts.push(d.slice());
    },
    closeWrite: async () => {
      c.closed = true;
    },
  };
  return c;
}

/** A callee that sends `messages` and then ends its side; returns what it read as stdin. */
async function callee(messages: Uint8Array[], channel: ReturnType<typeof memoryPair>[1]) {
  const got: Uint8Array[] = [];
  try {
    for (const m of messages) await channel.write(m);
    await channel.closeWrite();
    for (let c = await channel.read(); c !== null; c = await channel.read()) got.push(c);
  } catch {
    // the caller closed the channel
  }
  return dec(got);
}

const finished = (stdout: string, status: number) => [
  ...(stdout ? [encodeOutput(OutputType.STDOUT, enc(stdout))] : []),
  encodeOutput(OutputType.STDOUT, new Uint8Array(0)),
  encodeOutput(OutputType.STDERR, new Uint8Array(0)),
  encodeExit(status),
];

describe("runCall", () => {
  test("streams stdin in, output out, and returns the callee's status", async () => {
    const [ours, theirs] = memoryPair();
    const seen = callee(finished("out", 3), theirs);
    const stdout = collector();
    const stdin = [enc("in")];
    const result = await runCall(ours, {
      stdin: { read: async () => stdin.shift() ?? null },
      stdout,
      stderr: collector(),
    });
    expect(result).toEqual({ status: 3, broken: false });
    expect(dec(stdout.parts)).toBe("out");
    expect(stdout.closed).toBe(false); // closeStdoutAtEof not asked for
    expect(await seen).toBe("in");
  });

  test("closeStdoutAtEof closes our stdout when the callee's ends", async () => {
    const [ours, theirs] = memoryPair();
    void callee(finished("x", 0), theirs);
    const stdout = collector();
    await runCall(ours, { stdin: null, stdout, stderr: collector() }, { closeStdoutAtEof: true });
    expect(stdout.closed).toBe(true);
  });

  test("a channel that ends without an exit status is a broken call: 125", async () => {
    const [ours, theirs] = memoryPair();
    void callee([encodeOutput(OutputType.STDOUT, enc("partial"))], theirs);
    expect(await runCall(ours, { stdin: null, stdout: collector(), stderr: collector() })).toEqual({
      status: 125,
      broken: true,
    });
  });

  test("126 prints Request refused unless the caller is the relay", async () => {
    for (const refusedMessage of [true, false]) {
      const [ours, theirs] = memoryPair();
      void callee(finished("", 126), theirs);
      const stderr = collector();
      await runCall(ours, { stdin: null, stdout: collector(), stderr }, { refusedMessage });
      expect(dec(stderr.parts)).toBe(refusedMessage ? "Request refused\n" : "");
    }
  });

  test("stdout closed by its reader (EPIPE): SIGPIPE semantics, 141, and the callee is cut off", async () => {
    const [ours, theirs] = memoryPair();
    const seen = callee(finished("lost output", 0), theirs);
    const stdout = collector(() => new TransportError("stdout: broken pipe", "EPIPE"));
    expect(await runCall(ours, { stdin: "caller", stdout, stderr: collector() })).toEqual({
      status: 141,
      broken: false,
    });
    await seen; // the callee's side ended: the channel was closed
  });

  test("any other failure to write stdout is 125, never success", async () => {
    const [ours, theirs] = memoryPair();
    void callee(finished("lost output", 0), theirs);
    const stdout = collector(() => new TransportError("stdout: no space", "ENOSPC"));
    expect((await runCall(ours, { stdin: null, stdout, stderr: collector() })).status).toBe(125);
  });
});
