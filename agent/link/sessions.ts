/**
 * Host sessions: runs the responder handshake on a fresh link, completes a pairing (pins the
 * host, spends the token, or asks the user about the 6-digit code), and keeps one live session
 * per host key: a new session from the same host replaces the old one. Calls the host opens go
 * to `onOpen`; calls from the device go out on current().
 * Code pairing is limited by AgentState.codePairing: an attempt is counted before the device's
 * reveal leaves and taken back only when both ends confirmed; after 3 failures it is locked.
 * Must never: serve a pair-psk without a token, reuse a token, pin a key the user refused, send a
 * handshake reply before the IK timestamp is on disk (AgentState.peers), or reveal a pairing
 * nonce before the attempt is counted on disk.
 */

import { ProtocolError } from "../../core/errors.ts";
import type { CryptoResolver, LinkSuiteName } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { type Connected, connectAsResponder } from "../../core/session/establish.ts";
import { PairingLockedError, type PairingState } from "../../core/session/handshake.ts";
import { formatPublicKey } from "../../core/session/key-text.ts";
import { lockedText } from "../../core/session/pairing-code.ts";
import type { RecordLink } from "../../core/session/record-link.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { PAIR_CODE_MAX_FAILURES } from "../../core/wire/limits.ts";
import type { Config } from "../config.ts";
import type { Confirmer } from "../confirmation/confirmer.ts";
import { errorCode, keyPrefix, type Log } from "../log.ts";
import { AGENT_VERSION } from "../version.ts";
import { RefusalLog } from "./refusal-log.ts";
import type { AgentState } from "./state.ts";

export interface SessionDeps {
  readonly config: Config;
  readonly state: AgentState;
  readonly confirmer: Confirmer;
  readonly log: Log;
  readonly resolver: CryptoResolver;
  readonly suites: readonly LinkSuiteName[];
  /** A channel the host opened (a call into the device), with its session's refusal counter. */
  readonly onOpen: (channel: Channel, meta: Uint8Array, session: SessionRefusals) => void;
  /** A session came up or ended; `anyUp`: some host is still connected (the key lock's unplug). */
  readonly onLinkChange?: (anyUp: boolean) => void;
  /** Where refused handshakes are counted (default: its own, without DH figures). */
  readonly refusals?: RefusalLog;
}

/**
 * Malformed call requests of one session: the first REFUSED_CALLS_LOGGED are logged one line
 * each (enough to diagnose a broken host), the rest only counted and reported at session-down,
 * as refused OPENs are: one line per refused request would let the peer fill the log.
 */
export interface SessionRefusals {
  /** Counts one refused call request; true while it should still be logged on its own line. */
  refusedCall(): boolean;
}
export const REFUSED_CALLS_LOGGED = 8;

export class SessionManager {
  private readonly live = new Map<string, Connected>();
  /** Live sessions, oldest first: the last is the one device calls use. */
  private order: Connected[] = [];
  private stopped = false;
  /** Refused handshakes: counted, the first few per window logged (refusal-log.ts). */
  readonly refusals: RefusalLog;

  constructor(private readonly d: SessionDeps) {
    this.refusals = d.refusals ?? new RefusalLog(d.log, { clock: systemClock });
  }

  /** The newest live session, or null when no host is connected. */
  current(): Connected | null {
    for (let i = this.order.length - 1; i >= 0; i--) if (this.order[i]!.session.isOpen) return this.order[i]!;
    return null;
  }

  /**
   * Runs one link from handshake to end. `handshakeDone` is called once the handshake finished
   * either way (the listener's half-open count). Resolves when the session (or attempt) is over;
   * true when a session was established.
   */
  async serve(link: RecordLink, via: string, handshakeDone: () => void = () => {}): Promise<boolean> {
    const { config, state, log } = this.d;
    // The token is read when the host's offer arrives (an open tty may wait long for one), so a
    // token created meanwhile with `pair-token` is seen.
    const guard = state.codePairing;
    let codeAttempt = 0;
    const readPairing = async (): Promise<PairingState> => {
      let token: Uint8Array | undefined;
      try {
        token = await state.readToken();
      } catch (error) {
        log("pairing-token-unusable", { why: (error as Error).message });
      }
      return {
        token,
        allowCode: config.allowCodePairing,
        codeLockedMinutes: config.allowCodePairing ? guard.lockedMinutes() : undefined,
        codeAttempt: async () => {
          codeAttempt = await guard.attempt();
        },
      };
    };
    let usedToken: Uint8Array | undefined;
    const pairing = async () => {
      const p = await readPairing();
      usedToken = p.token;
      return p;
    };
    // OPENs beyond the channel cap are reset by the vchan; the first one of a session is logged
    // (one line per refused OPEN would let the peer fill the log), the count at session-down.
    const refusedOpens = { count: 0, peer: "" };
    const onOpenRefused = () => {
      if (refusedOpens.count++ === 0)
        log("channel-refused", { peer: refusedOpens.peer, via, code: "channel-limit" });
    };
    let refusedCalls = 0;
    const refusals: SessionRefusals = { refusedCall: () => ++refusedCalls <= REFUSED_CALLS_LOGGED };
    const onOpen = (channel: Channel, meta: Uint8Array) => this.d.onOpen(channel, meta, refusals);
    let c: Connected;
    try {
      c = await connectAsResponder(
        {
          link,
          resolver: this.d.resolver,
          staticKey: state.deviceKey,
          version: AGENT_VERSION,
          suites: this.d.suites,
          peers: state.peers,
          pairing,
        },
        { clock: systemClock, onOpen, onOpenRefused },
      );
    } catch (error) {
      const locked = error instanceof PairingLockedError ? lockedText(error.minutes) : undefined;
      this.refusals.refused({ via, code: errorCode(error), why: locked });
      // A pair-code attempt whose reveal may have left and that ended here (e.g. the handshake
      // deadline) stays a failure: it may lock code pairing now.
      if (codeAttempt > 0) await this.codeFailed(via);
      return false;
    } finally {
      handshakeDone();
    }
    const e = c.established;
    const peer = keyPrefix(e.peerKey);
    refusedOpens.peer = peer;
    try {
      if (e.mode === "pair-psk") {
        if (!usedToken || !state.consumeToken(usedToken))
          throw new ProtocolError("handshake-psk", "token already used");
        await state.pin(e.peerKey, e.pairingId);
        await state.deleteTokenFile();
      } else if (e.mode === "pair-code") {
        log("pairing-code", {
          code: e.pairingCode,
          peer,
          via,
          attempt: `${codeAttempt}/${PAIR_CODE_MAX_FAILURES}`,
        });
        const approved = await this.d.confirmer.confirm({
          kind: "pairing",
          code: e.pairingCode!,
          peerKey: formatPublicKey(e.peerKey),
          attempt: codeAttempt,
        });
        await c.session.confirmPairing(approved);
        await state.pin(e.peerKey, e.pairingId);
        await guard.succeeded();
      }
    } catch (error) {
      c.session.close();
      log("refused", {
        via,
        peer,
        mode: e.mode,
        code: errorCode(error),
      });
      if (e.mode === "pair-code") await this.codeFailed(via);
      return false;
    }
    if (e.mode !== "reconnect") log("paired", { peer: formatPublicKey(e.peerKey), mode: e.mode, via });
    if (this.stopped) {
      c.session.close();
      return true;
    }
    const id = formatPublicKey(e.peerKey);
    const old = this.live.get(id);
    this.live.set(id, c);
    this.order = [...this.order.filter((x) => x !== old && x.session.isOpen), c];
    if (old) {
      log("session-replaced", { peer });
      old.session.close();
    }
    log("session-up", { peer, mode: e.mode, suite: e.suite, via, hostVersion: safeVersion(e.peerVersion) });
    this.d.onLinkChange?.(true);
    const end = await c.session.closed;
    if (this.live.get(id) === c) this.live.delete(id);
    this.order = this.order.filter((x) => x !== c);
    this.d.onLinkChange?.(this.current() !== null);
    const refused = refusedOpens.count > 0 ? refusedOpens.count : undefined;
    log("session-down", {
      peer,
      code: end?.code ?? "closed",
      via,
      refusedOpens: refused,
      refusedCalls: refusedCalls > 0 ? refusedCalls : undefined,
    });
    return true;
  }

  /** A code pairing attempt failed (refused or abandoned); logs the lock if it started now. */
  private async codeFailed(via: string): Promise<void> {
    try {
      const minutes = await this.d.state.codePairing.failed();
      if (minutes !== undefined) this.d.log("pairing-locked", { via, minutes, why: lockedText(minutes) });
    } catch (error) {
      // The attempt was counted on disk before the reveal; only the restart of the lock is lost.
      this.d.log("pairing-lock-unsaved", { why: (error as Error).message });
    }
  }

  /** Closes every session (orderly CLOSE) and refuses new ones. */
  closeAll(): void {
    this.stopped = true;
    for (const c of this.live.values()) c.session.close();
  }
}

/** The peer's version string is peer bytes: only a plain, short one is logged. */
function safeVersion(v: string): string {
  return /^[A-Za-z0-9_.+/-]{1,40}$/.test(v) ? v : "(unprintable)";
}
