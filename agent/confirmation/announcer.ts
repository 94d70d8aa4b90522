/**
 * Tells sys-remote about this device's confirmations: each prompt that starts waiting and each
 * decision (approved, denied, timeout, conflict) goes out as a `qubesair.Announce` call on the
 * current host session (core/qrexec/announcement.ts), so every approval is seen in Qubes.
 * Fire and forget: a prompt never waits for its announcement. Without a session nothing is
 * sent (the audit log keeps the record); at most ANNOUNCE_IN_FLIGHT calls are open at once and
 * further events are dropped with a log line, so a stalled host cannot make the agent hold an
 * unbounded queue.
 * Must never: throw into the confirmation manager, or send anything the request did not hold.
 */
import type { CallChannel } from "../../calls/channel.ts";
import { type Announcement, encodeAnnouncement } from "../../core/qrexec/announcement.ts";
import { encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import { Service } from "../../core/qrexec/services.ts";
import type { Log } from "../log.ts";
import type { ConfirmationEvent, ConfirmationRequest } from "./manager.ts";

/** The client name announced for a code pairing (a valid qube name, so sys-remote takes it). */
export const PAIRING_CLIENT = "pairing";

/** Announcements on their way at once: a person cannot cause more than a few per second. */
export const ANNOUNCE_IN_FLIGHT = 8;

/** Opens a channel with this call request on the live host session, or null when there is none. */
export type OpenChannel = (meta: Uint8Array) => CallChannel | null;

export class Announcer {
  private open: OpenChannel = () => null;
  private inFlight = 0;

  constructor(
    private readonly self: string,
    private readonly log: Log,
  ) {}

  /** The sessions exist after the confirmation manager: they are attached once built. */
  attach(open: OpenChannel): void {
    this.open = open;
  }

  announce(e: ConfirmationEvent): void {
    if (this.inFlight >= ANNOUNCE_IN_FLIGHT) {
      this.log("announce-dropped", { id: e.id, event: e.kind });
      return;
    }
    let channel: CallChannel | null;
    try {
      channel = this.open(
        encodeCallRequest({ source: this.self, target: "@default", service: Service.Announce, arg: "" }),
      );
    } catch {
      channel = null; // the session is going away: the audit log has the record
    }
    if (channel === null) return;
    this.inFlight++;
    void send(channel, encodeAnnouncement(announcementOf(e))).finally(() => this.inFlight--);
  }
}

/** What of a request is announced: names, the operation, the key, and the digest or argument. */
export function announcementOf(e: ConfirmationEvent): Announcement {
  const r: ConfirmationRequest = e.request;
  const detail =
    r.argument !== undefined
      ? `arg=${r.argument}`
      : r.digestPrefix !== undefined && r.digestSuffix !== undefined
        ? `${r.hashAlgo ?? "digest"} ${r.digestPrefix}...${r.digestSuffix}`
        : r.pairing
          ? `code ${r.pairing.code}`
          : "";
  return {
    event: e.kind,
    id: e.id,
    code: e.code,
    // A pairing's "client" is the host's key (qa-pub:…), not a qube name: sys-remote would refuse
    // it, so the key goes where keys go and the client is the word for what is asked.
    client: r.pairing ? PAIRING_CLIENT : r.client,
    service: r.service,
    operation: r.operation,
    key: r.pairing ? r.pairing.peerKey : r.key,
    detail,
  };
}

async function send(channel: CallChannel, body: Uint8Array): Promise<void> {
  try {
    await channel.write(body);
    await channel.closeWrite();
    while ((await channel.read()) !== null) {} // sys-remote's answer: an exit status, nothing to act on
  } catch {
    // the session ended: the audit log has the record
  } finally {
    channel.close();
  }
}
