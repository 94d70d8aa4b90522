/**
 * The callee side of a call's framing for built-in services, which run in the agent rather than
 * as a process: stdout and stderr as ByteSinks that emit STDOUT/STDERR messages on the channel
 * (core/qrexec/call-protocol.ts), closeWrite() as that stream's zero-length EOF, and finish()
 * for the exit status. All writes go through one OrderedWriter, so messages never interleave.
 * Must never: send an EXIT before both output EOFs, or anything after it.
 */
import { assert } from "../core/errors.ts";
import { encodeExit, encodeOutput, MAX_OUTPUT_CHUNK, OutputType } from "../core/qrexec/call-protocol.ts";
import type { CallChannel } from "../runtime/call-exec.ts";
import { OrderedWriter } from "../runtime/ordered-writer.ts";
import { type ByteSink, type ByteSource, TransportError } from "../transport/transport.ts";

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
    await this.stdout.closeWrite();
    await this.stderr.closeWrite();
    this.finished = true;
    await this.out.send(encodeExit(status));
    await this.channel.closeWrite();
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
          await this.out.send(encodeOutput(type, data.subarray(i, i + MAX_OUTPUT_CHUNK)));
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

/** Reads and drops what the caller still sends, so its writes complete. */
export async function drainChannel(channel: Pick<CallChannel, "read">): Promise<void> {
  try {
    while ((await channel.read()) !== null) {}
  } catch {
    // the channel ended
  }
}

/** The caller's stdin side of a channel as a ByteSource (for code that takes one). */
export function channelSource(
  channel: CallChannel,
  read: () => Promise<Uint8Array | null> = () => channel.read(),
): ByteSource {
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  return {
    description: "call stdin",
    closed,
    read,
    close() {
      channel.close();
      resolveClosed();
    },
  };
}
