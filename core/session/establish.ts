/**
 * From a fresh RecordLink to a running Session with its vchan: the handshake (under a deadline),
 * then the transport phase. The one place where handshake, session and multiplexer are joined.
 * Must never: leave a half-open link behind on failure (the link is closed on every error).
 */
import { ProtocolError } from "../errors.ts";
import type { CryptoResolver } from "../noise/suites.ts";
import { resolveLinkSuite } from "../noise/suites.ts";
import type { Channel } from "../vchan/channel.ts";
import { Vchan } from "../vchan/vchan.ts";
import { HANDSHAKE_TIMEOUT_MS, VCHAN_DATA_HEADER_BYTES } from "../wire/limits.ts";
import type { Clock } from "./duplex.ts";
import {
  type Established,
  type InitiatorOptions,
  initiateHandshake,
  type ResponderOptions,
  respondHandshake,
} from "./handshake.ts";
import { Session, type SessionOptions } from "./session.ts";

export interface LinkTuning {
  readonly clock: Clock;
  readonly handshakeTimeoutMs?: number;
  readonly session?: Partial<
    Pick<SessionOptions, "rekeyAfterMs" | "rekeyAfterRecords" | "keepaliveIntervalMs" | "keepaliveTimeoutMs">
  >;
  readonly maxChannels?: number;
  /** A channel the peer opened. */
  readonly onOpen: (channel: Channel, meta: Uint8Array) => void;
  /** A peer OPEN reset with LIMIT: the channel cap was reached (vchan.ts). */
  readonly onOpenRefused?: () => void;
}

export interface Connected {
  readonly established: Established;
  readonly session: Session;
  readonly vchan: Vchan;
}

export function connectAsInitiator(o: InitiatorOptions, t: LinkTuning): Promise<Connected> {
  return run(initiateHandshake(o), o.link, o.resolver, o.staticKey, o.version, true, t);
}

export function connectAsResponder(o: ResponderOptions, t: LinkTuning): Promise<Connected> {
  return run(respondHandshake(o), o.link, o.resolver, o.staticKey, o.version, false, t);
}

async function run(
  handshake: Promise<Established>,
  link: InitiatorOptions["link"],
  resolver: CryptoResolver,
  staticKey: InitiatorOptions["staticKey"],
  version: string,
  initiator: boolean,
  t: LinkTuning,
): Promise<Connected> {
  let cancel = () => {};
  const deadline = new Promise<never>((_, reject) => {
    // A line's own ceiling (serial: SERIAL_HANDSHAKE_TIMEOUT_MS) bounds the caller's choice.
    const ms = Math.min(
      t.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      link.timing?.handshakeTimeoutMs ?? Number.POSITIVE_INFINITY,
    );
    cancel = t.clock.setTimer(ms, () => reject(new ProtocolError("handshake-timeout")));
  });
  let established: Established;
  try {
    established = await Promise.race([handshake, deadline]);
  } catch (error) {
    cancel();
    link.close();
    handshake.catch(() => {}); // the link is closed; its late failure is expected
    throw error;
  }
  let vchan: Vchan | null = null;
  const session = new Session(link, established, {
    initiator,
    staticKey,
    suite: resolveLinkSuite(resolver, established.suite),
    suiteName: established.suite,
    version,
    clock: t.clock,
    onVchan: (record) => vchan!.receive(record),
    ...t.session,
  });
  vchan = new Vchan({
    initiator,
    send: (record) => session.sendVchan(record),
    onOpen: t.onOpen,
    onOpenRefused: t.onOpenRefused,
    maxChannels: t.maxChannels,
    maxChunk: session.maxRecord - VCHAN_DATA_HEADER_BYTES,
  });
  void session.closed.then((error) => vchan!.end(error ?? new ProtocolError("link-lost", "session closed")));
  session.start();
  try {
    // In XXpsk3 the initiator sends the last handshake message, so it cannot know yet whether
    // the responder accepted it (a wrong token fails only there). One round trip confirms the
    // keys before anyone calls this a pairing.
    if (initiator && established.mode === "pair-psk") await Promise.race([session.ping(), deadline]);
    // pair-code: the host knows the code only once the device's reveal opened its commitment
    // (a mismatch ends the session with "pairing-commitment"). Both ends then confirm it.
    if (initiator && established.mode === "pair-code") {
      established = { ...established, pairingCode: await Promise.race([session.pairingCode(), deadline]) };
    }
  } catch (error) {
    session.close();
    if (established.mode === "pair-code") throw error;
    if (!(error instanceof ProtocolError && error.code === "link-lost")) throw error;
    throw new ProtocolError("handshake-psk", "peer refused the token");
  } finally {
    cancel();
  }
  return { established, session, vchan };
}
