/**
 * The relay's watch on its own call's prompts: while a call from a client qube runs, the daemon
 * tells the relay each announcement of that device for that client and service (waiting for a
 * press, approved, denied, expired; host/daemon/prompts.ts), and the relay writes the line to its
 * stderr. qrexec carries a service's stderr to the caller's qrexec-client-vm stderr
 * (MSG_DATA_STDERR), so a terminal user sees that the device waits for a press, with the same
 * request code as the device's prompt.
 * Must never: write to stdout (the call's data), hold up or fail the call (a daemon that cannot
 * watch means no lines, nothing more), or write anything but printable ASCII lines.
 */
import { encodeMessage, MessageReader } from "../../calls/socket-messages.ts";
import type { ByteSink, ByteStream } from "../../transport/transport.ts";
import type { CallTarget } from "../daemon-call.ts";

/**
 * After the call ends, how long a prompt seen waiting may still take to announce its decision:
 * the device sends the announcement beside the call, so it can arrive just after the call's end.
 */
export const WATCH_GRACE_MS = 1_000;

export interface PromptWatch {
  /** Ends the watch once the call is over (after the grace for an undecided prompt). */
  finish(): Promise<void>;
}

export async function watchPrompts(
  connect: () => Promise<ByteStream>,
  call: CallTarget,
  stderr: ByteSink,
): Promise<PromptWatch> {
  let sock: ByteStream;
  try {
    sock = await connect();
    await sock.write(
      encodeMessage("request", {
        op: "watch",
        remote: call.remote,
        source: call.source,
        service: call.service,
      }),
    );
  } catch {
    return { finish: async () => {} };
  }
  const reader = new MessageReader(sock, "answer");
  const undecided = new Set<string>();
  let settled: () => void = () => {};
  const allDecided = () => {
    if (undecided.size === 0) settled();
  };
  const reading = (async () => {
    const first = await reader.next();
    if (first?.ok !== true) return;
    for (let m = await reader.next(); m !== null; m = await reader.next()) {
      if (m.event !== "prompt" || typeof m.line !== "string" || typeof m.code !== "string") continue;
      if (m.state === "waiting") undecided.add(m.code);
      else undecided.delete(m.code);
      await stderr.write(new TextEncoder().encode(`qubes-air: ${printable(m.line)}\n`)).catch(() => {});
      allDecided();
    }
  })().catch(() => {});
  return {
    async finish() {
      if (undecided.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((resolve) => {
            settled = resolve;
          }),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, WATCH_GRACE_MS);
          }),
          reading,
        ]);
        clearTimeout(timer);
      }
      sock.close();
      await reading;
    },
  };
}

function printable(s: string): string {
  return s.slice(0, 1024).replace(/[^\x20-\x7e]/g, "_");
}
