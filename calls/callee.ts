/**
 * The callee's end of a call (core/qrexec/call-protocol.ts): one output type for every kind of
 * callee. A service process (callee-process.ts), a built-in service of the agent, and a call
 * that is refused or cannot run all answer through CallOutput: stdout and stderr as ByteSinks
 * that emit STDOUT/STDERR messages, closeWrite() as that stream's zero-length EOF, and finish()
 * for the exit status. Refusing is finishing with a status (`finishCall`).
 * All writes go through one OrderedWriter, so messages of the two streams never interleave.
 * Must never: send an EXIT before both output EOFs, or anything after it.
 */
import { assert } from "../core/errors.ts";
import {
  encodeExit,
  encodeOutput,
  encodeOutputHeader,
  MAX_OUTPUT_CHUNK,
  OutputType,
} from "../core/qrexec/call-protocol.ts";
import { type ByteSink, TransportError } from "../transport/transport.ts";
import { type CallChannel, drain } from "./channel.ts";
import { OrderedWriter } from "./ordered-writer.ts";

const EMPTY = new Uint8Array(0);

export class CallOutput {
  private readonly out: OrderedWriter;
  private finished = false;
  readonly stdout: ByteSink;
  readonly stderr: ByteSink;

  constructor(private readonly channel: CallChannel) {
    this.out = new OrderedWriter((d) => channel.write(d));
    this.stdout = this.sink(OutputType.STDOUT, "stdout");
    this.stderr = this.sink(OutputType.STDERR, "stderr");
  }

  /** Ends both output streams (if still open), sends the exit status, and half-closes. */
  async finish(status: number): Promise<void> {
    assert(!this.finished, "call finished twice");
    this.finished = true;
    await this.stdout.closeWrite();
    await this.stderr.closeWrite();
    await this.out.send(encodeExit(status));
    await this.channel.closeWrite();
  }

  /** One output message; header and payload go into the channel's record without a join copy. */
  private sendOutput(type: OutputType, payload: Uint8Array): Promise<void> {
    const joined = this.channel.writeJoined?.bind(this.channel);
    if (!joined) return this.out.send(encodeOutput(type, payload));
    return this.out.run(() => joined(encodeOutputHeader(type, payload.length), payload));
  }

  private sink(type: OutputType, name: string): ByteSink {
    let open = true;
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => {
      resolveClosed = r;
    });
    const description = `call ${name}`;
    return {
      description,
      closed,
      write: async (data) => {
        if (!open) throw new TransportError(`${description}: write after close`, "write-closed");
        for (let i = 0; i < data.length; i += MAX_OUTPUT_CHUNK) {
          await this.sendOutput(type, data.subarray(i, i + MAX_OUTPUT_CHUNK));
        }
      },
      closeWrite: async () => {
        if (!open) return;
        open = false;
        await this.out.send(encodeOutput(type, EMPTY));
        resolveClosed();
      },
      close: () => {
        open = false;
        resolveClosed();
      },
    };
  }
}

/**
 * Ends a call without running anything: `stderrText` (ours, never peer bytes), empty output
 * streams, then `status` (126 refused, 127 not found, 125 a problem). Resolves once the status
 * is sent; `drained` resolves when the caller's remaining stdin has been read and dropped (so its
 * writes complete: see socket-bridge.ts for why that matters on a unix socket).
 */
export async function finishCall(
  channel: CallChannel,
  status: number,
  stderrText?: string,
): Promise<{ readonly drained: Promise<void> }> {
  const out = new CallOutput(channel);
  if (stderrText) await out.stderr.write(new TextEncoder().encode(stderrText));
  await out.finish(status);
  return { drained: drain(channel) };
}
