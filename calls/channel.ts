/**
 * What the call layer needs of a call's byte stream: a vchan channel (core/vchan/channel.ts) on
 * the link, or a unix socket between a local client and a daemon. Both carry the same framing
 * (core/qrexec/call-protocol.ts), so every function in calls/ takes this one shape.
 * Must never: hold more than one chunk of a stream (the peer's credit and socket buffers bound
 * memory, not us).
 */
import type { ByteSource, ByteStream } from "../transport/transport.ts";

export type CallChannel = Pick<ByteStream, "read" | "write" | "closeWrite" | "close"> & {
  /** write(prefix + data) without joining them first (a vchan channel has it: one copy fewer). */
  writeJoined?(prefix: Uint8Array, data: Uint8Array): Promise<void>;
};

/** Reads and drops what the other side still sends, so its writes complete. */
export async function drain(source: Pick<ByteSource, "read">): Promise<void> {
  try {
    while ((await source.read()) !== null) {}
  } catch {
    // the stream ended: nothing more to drain
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
