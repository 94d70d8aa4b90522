/**
 * `qubesair.Announce` from a device: what its confirmations asked and decided
 * (core/qrexec/announcement.ts), handed to the prompt board (prompts.ts: the journal of
 * sys-remote, the desktop notification, `qubes-air list`, the caller's stderr). Every approval
 * on the device shows there, so a press that approved another qube's request is seen in Qubes.
 * sys-remote answers this service itself: it never reaches qrexec or dom0.
 * Must never: read more than one announcement's worth of bytes, or write device text that
 * decodeAnnouncement did not reduce to printable ASCII.
 */
import { CallOutput } from "../../calls/callee.ts";
import { type CallChannel, drain } from "../../calls/channel.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { ProtocolError } from "../../core/errors.ts";
import {
  ANNOUNCEMENT_MAX_BYTES,
  type Announcement,
  decodeAnnouncement,
} from "../../core/qrexec/announcement.ts";

/** Reads one announcement from `remote`'s channel and hands it on; 0 when taken, 125 when refused. */
export async function receiveAnnouncement(
  remote: string,
  channel: CallChannel,
  announced: (remote: string, a: Announcement) => void,
  log: (message: string) => void,
): Promise<number> {
  const out = new CallOutput(channel);
  let status: number = EXIT.OK;
  try {
    const parts: Uint8Array[] = [];
    let size = 0;
    for (let c = await channel.read(); c !== null; c = await channel.read()) {
      size += c.length;
      if (size > ANNOUNCEMENT_MAX_BYTES) throw new ProtocolError("frame-too-large", "announcement");
      parts.push(c);
    }
    announced(remote, decodeAnnouncement(Buffer.concat(parts)));
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    log(`${remote}: refused an announcement (${error.code})`);
    status = EXIT.CALL_PROBLEM;
  }
  await out.finish(status);
  void drain(channel);
  return status;
}
