/**
 * Calls from a device into Qubes (qubes-remote-qrexec.md §1.4): a channel the agent opens
 * carries a CallRequest; we run
 *
 *   qrexec-client-vm --source-qube=<RemoteVM> -- <target> <service>+<arg>
 *
 * and stream it with calls/callee-process.ts. The request's `source` is IGNORED: a device must not
 * choose its identity, so the source is always the registry name of the session the channel
 * arrived on. dom0 then accepts the call only from that RemoteVM's relay and evaluates policy
 * with the RemoteVM as the source.
 * The one exception is `qubesair.Announce` (announcements.ts), which sys-remote answers itself.
 * Must never: pass a name from the device to the command line without the qrexec validation of
 * decodeCallRequest, or go through a shell.
 */

import { runCallProcess } from "../../calls/callee-process.ts";
import type { Announcement } from "../../core/qrexec/announcement.ts";
import { decodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import { fullServiceName } from "../../core/qrexec/names.ts";
import { Service } from "../../core/qrexec/services.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { ResetReason } from "../../core/vchan/messages.ts";
import { platform } from "../../platform/index.ts";
import { receiveAnnouncement } from "./announcements.ts";

export interface IncomingOptions {
  /** The qrexec-client-vm program (a name looked up in PATH, or a path). */
  readonly qrexecClient: string;
  readonly log: (message: string) => void;
  /** A decoded qubesair.Announce (the daemon's prompt board). */
  readonly announced: (remote: string, a: Announcement) => void;
}

export function qrexecClientArgv(
  client: string,
  remote: string,
  target: string,
  serviceAndArg: string,
): string[] {
  return [client, `--source-qube=${remote}`, "--", target, serviceAndArg];
}

/** Handles one channel a device opened on the session of `remote`. Never throws. */
export function handleIncoming(o: IncomingOptions, remote: string, channel: Channel, meta: Uint8Array): void {
  let request: ReturnType<typeof decodeCallRequest>;
  try {
    request = decodeCallRequest(meta);
  } catch {
    o.log(`${remote}: refused a malformed call request`);
    channel.reset(ResetReason.REFUSED);
    return;
  }
  if (request.service === Service.Announce) {
    void receiveAnnouncement(remote, channel, o.announced, o.log).catch(() => channel.close());
    return;
  }
  const service = fullServiceName(request);
  o.log(`${remote}: call to ${request.target} ${service}`);
  const argv = qrexecClientArgv(o.qrexecClient, remote, request.target, service);
  void runCallProcess(channel, () => platform.spawn(argv)).then(
    (status) => o.log(`${remote}: call to ${request.target} ${service} ended with ${status}`),
    () => channel.close(),
  );
}
