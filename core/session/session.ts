/**
 * The transport phase of a link: a read loop that dispatches records by kind, keepalive with
 * round-trip time, rekey by a fresh IK handshake on the live link, the pairing code's reveal and
 * confirmation, and orderly close. The vchan multiplexer rides on VCHAN records.
 *
 * Pair-code (core/session/pairing-code.ts): the device (committer) sends PAIR_REVEAL with its
 * nonce as its first record; the host (checker) opens the commitment with it and only then knows
 * the code. PAIR_CONFIRM follows each user's approval; vchan traffic waits for both.
 *
 * Rekey (noise-transport.md §7.5; new ephemerals, so forward secrecy, unlike Noise Rekey()):
 *   initiator  REKEY(msg1: -> e, es, s, ss)            under old keys
 *   responder  REKEY(msg2: <- e, ee, se), then sends under the new key
 *   initiator  receives under the new key from then on; REKEY_SWITCH under the old send key,
 *              then sends under the new key; the responder switches its receive key on SWITCH.
 * Only the original initiator starts a rekey, so two rekeys never cross.
 *
 * Must never: process a record after a decryption failure, accept a rekey from a different
 * static key than the session's peer, let vchan traffic through before a pairing code is
 * confirmed on both ends, or accept a PAIR_CONFIRM before the reveal was checked.
 */
import { equalBytes } from "../bytes.ts";
import { AssertionError, assert, ProtocolError } from "../errors.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import type { NoiseSuite } from "../noise/crypto.ts";
import { HandshakeState } from "../noise/handshake-state.ts";
import { parsePattern } from "../noise/patterns.ts";
import {
  KEEPALIVE_INTERVAL_MS,
  KEEPALIVE_TIMEOUT_MS,
  PING_ANSWER_TIMEOUT_MS,
  PING_PROBE_AFTER_MS,
  PING_VERDICT_CONFIRM_MS,
  PONGS_IN_FLIGHT_MAX,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_MS,
  SENDS_IN_FLIGHT_MAX,
  TIMER_LATE_MS,
} from "../wire/limits.ts";
import type { Clock } from "./duplex.ts";
import type { CodePairing, Established } from "./handshake.ts";
import type { StaticKeyPair, StaticPublicKey } from "./key-text.ts";
import { buildPrologue, decodeVersionPayload, encodeVersionPayload, RecordKind } from "./messages.ts";
import { checkReveal, pairingCode } from "./pairing-code.ts";
import type { RecordLink } from "./record-link.ts";

export interface SessionOptions {
  readonly initiator: boolean;
  readonly staticKey: StaticKeyPair;
  readonly suite: NoiseSuite;
  readonly suiteName: string;
  readonly version: string;
  readonly clock: Clock;
  readonly onVchan: (record: Uint8Array) => void;
  readonly rekeyAfterMs?: number;
  readonly rekeyAfterRecords?: number;
  readonly keepaliveIntervalMs?: number;
  readonly keepaliveTimeoutMs?: number;
}

const REKEY_LABEL = new TextEncoder().encode("rekey");

export class Session {
  readonly peerKey: StaticPublicKey;
  readonly peerVersion: string;
  private handshakeHash: Uint8Array;
  private rekeyState: HandshakeState | null = null;
  private rekeyWaiters: Waiter<void>[] = [];
  private pendingRecvKey: CipherState | null = null;
  private keyEstablishedAt: number;
  private lastReceivedAt: number;
  /** When the last authenticated record arrived (line bytes alone do not move this). */
  private lastRecordAt: number;
  private lastSentAt: number;
  /**
   * When we first sent, since the last record received, a record the peer answers in some way
   * (anything but PONG and CLOSE); null once something was heard after it.
   */
  private askedAt: number | null = null;
  /**
   * When the oldest PING still waiting for any authenticated record back was written, or null.
   * Past PING_ANSWER_TIMEOUT_MS the peer is not hearing us (or we are not hearing it).
   */
  private awaitingSince: number | null = null;
  /** Bumped whenever awaitingSince is cleared or re-armed, so a stale deadline timer does nothing. */
  private awaitGeneration = 0;
  private cancelDeadline: () => void = () => {};
  /** After a pause of this process, no keepalive verdict before this time (a fresh ping decides). */
  private resumeGraceUntil = 0;
  private pings = new Map<bigint, Waiter<number> & { sentAt: number }>();
  private nextPingId = 1n;
  /** PONGs being written; beyond PONGS_IN_FLIGHT_MAX further PINGs go unanswered (dispatch). */
  private pongsInFlight = 0;
  /** Records handed to the link and not yet written (SENDS_IN_FLIGHT_MAX). */
  private sendsInFlight = 0;
  private confirm: { needed: boolean; mine: boolean; peer: boolean; waiters: Waiter<void>[] };
  /** Pair-code: the nonces, and the code once known (at once for the committer). */
  private readonly codePairing: CodePairing | undefined;
  private readonly pairingHash: Uint8Array;
  private code: string | null = null;
  private codeWaiters: Waiter<string>[] = [];
  private ended = false;
  private endReason: ProtocolError | null = null;
  private cancelTimer: () => void = () => {};
  /** When the last tick ran, and the line's byte count then (RecordLink.bytesReceived). */
  private lastTickAt: number;
  private lastLineBytes: number;
  private resolveClosed!: (error: ProtocolError | null) => void;
  /** Resolves once, when the session ends: null for an orderly close, else the fault. */
  readonly closed: Promise<ProtocolError | null>;
  rttMs: number | null = null;
  /** Completed rekeys on this session. */
  rekeys = 0;

  constructor(
    private readonly link: RecordLink,
    established: Established,
    private readonly o: SessionOptions,
  ) {
    this.peerKey = established.peerKey;
    this.peerVersion = established.peerVersion;
    this.handshakeHash = established.result.handshakeHash;
    this.confirm = { needed: established.mode === "pair-code", mine: false, peer: false, waiters: [] };
    this.codePairing = established.codePairing;
    this.pairingHash = established.result.handshakeHash;
    assert(this.confirm.needed === (this.codePairing !== undefined), "pair-code needs its nonces");
    if (this.codePairing?.role === "committer") {
      this.code = pairingCode(this.pairingHash, this.codePairing.nonce, this.codePairing.peerNonce);
    }
    link.setSendKey(established.result.send);
    link.setRecvKey(established.result.receive);
    const now = o.clock.now();
    this.keyEstablishedAt = now;
    this.lastReceivedAt = now;
    this.lastRecordAt = now;
    this.lastSentAt = now;
    this.lastTickAt = now;
    this.lastLineBytes = link.bytesReceived ?? 0;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** Starts the read loop and timers; the committer of a code pairing sends its reveal first. */
  start(): void {
    this.scheduleTick();
    if (this.codePairing?.role === "committer") {
      this.sendRecord(prefixed(RecordKind.PAIR_REVEAL, this.codePairing.nonce)).catch(() => {});
    }
    void this.readLoop();
  }

  /**
   * Pair-code: the six digits, once known (the host learns them from the device's reveal).
   * Rejects if the session ends first, with "pairing-commitment" if the reveal did not match.
   */
  pairingCode(): Promise<string> {
    assert(this.codePairing !== undefined, "no pairing code in this session");
    if (this.code !== null) return Promise.resolve(this.code);
    if (this.ended) return Promise.reject(this.endReason ?? new ProtocolError("link-lost", "session closed"));
    return new Promise((resolve, reject) => this.codeWaiters.push({ resolve, reject }));
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  /** Largest record the link carries; the vchan chunks data to fit. */
  get maxRecord(): number {
    return this.link.maxRecord;
  }

  /** Channel binding value (Noise §11.2): changes with every rekey. */
  get hash(): Uint8Array {
    return this.handshakeHash;
  }

  /** Sends a vchan record; record[0] must already be RecordKind.VCHAN (no copy on the data path). */
  sendVchan(record: Uint8Array): Promise<void> {
    assert(record[0] === RecordKind.VCHAN, "vchan record without its kind byte");
    if (this.confirm.needed && !(this.confirm.mine && this.confirm.peer)) {
      return Promise.reject(new ProtocolError("unexpected-message", "pairing not confirmed"));
    }
    return this.sendRecord(record);
  }

  /** Round-trip time of one PING/PONG. */
  ping(): Promise<number> {
    const id = this.nextPingId++;
    const body = new Uint8Array(9);
    body[0] = RecordKind.PING;
    new DataView(body.buffer).setBigUint64(1, id, false);
    if (this.ended) return Promise.reject(new ProtocolError("link-lost", "session closed"));
    return new Promise((resolve, reject) => {
      this.pings.set(id, { sentAt: this.o.clock.now(), resolve, reject });
      // The answer deadline runs from the write: a ping queued behind our own bulk data is not late.
      // A failed send ends the session, which rejects us.
      this.sendRecord(body).then(
        () => this.armPingDeadline(),
        () => {},
      );
    });
  }

  /**
   * Pair-code mode: the local user's verdict on the code. Resolves once both users confirmed;
   * rejects (and ends the session) if the local user refused or the peer went away.
   */
  async confirmPairing(approved: boolean): Promise<void> {
    assert(this.confirm.needed, "no pairing code to confirm");
    assert(this.code !== null, "the code is confirmed only once it is known");
    if (!approved) {
      this.close();
      throw new ProtocolError("handshake-unknown-key", "pairing code refused");
    }
    this.confirm.mine = true;
    await this.sendRecord(Uint8Array.of(RecordKind.PAIR_CONFIRM));
    if (this.confirm.peer) return;
    if (this.ended) throw new ProtocolError("link-lost", "peer left before confirming");
    await new Promise<void>((resolve, reject) => this.confirm.waiters.push({ resolve, reject }));
  }

  /** Initiator: start a rekey now; resolves when both directions use the new keys. */
  rekey(): Promise<void> {
    assert(this.o.initiator, "only the initiator starts a rekey");
    if (this.ended) return Promise.reject(new ProtocolError("link-lost", "session closed"));
    const done = new Promise<void>((resolve, reject) => this.rekeyWaiters.push({ resolve, reject }));
    if (this.rekeyState === null) {
      this.rekeyState = this.newRekeyState(true);
      const msg1 = this.rekeyState.writeMessage(encodeVersionPayload(this.o.version)); // -> e, es, s, ss
      this.sendRecord(prefixed(RecordKind.REKEY, msg1)).catch(() => {});
    }
    return done;
  }

  /** Orderly close: tells the peer (once the CLOSE record is written), then ends. */
  close(): void {
    if (this.ended) return;
    void this.sendRecord(Uint8Array.of(RecordKind.CLOSE, 0))
      .catch(() => {})
      .finally(() => this.end(null));
  }

  private newRekeyState(initiator: boolean): HandshakeState {
    return new HandshakeState(`Noise_IK_${this.o.suiteName}`, {
      suite: this.o.suite,
      pattern: parsePattern("IK")!,
      initiator,
      prologue: buildPrologue(this.link.transport, REKEY_LABEL, this.handshakeHash),
      s: this.o.staticKey,
      rs: initiator ? this.peerKey : undefined,
    });
  }

  private get rekeyAfterRecords(): number {
    return this.o.rekeyAfterRecords ?? REKEY_AFTER_MESSAGES;
  }

  private sendRecord(record: Uint8Array): Promise<void> {
    if (this.ended) return Promise.reject(new ProtocolError("link-lost", "session closed"));
    this.lastSentAt = this.o.clock.now();
    if (this.askedAt === null && record[0] !== RecordKind.PONG && record[0] !== RecordKind.CLOSE) {
      this.askedAt = this.lastSentAt;
    }
    // The message limit is checked per record, not per tick: a fast link passes it in well under a second.
    if (this.o.initiator && this.rekeyState === null && this.link.recordsSinceKey > this.rekeyAfterRecords) {
      this.rekey().catch(() => {});
    }
    // Records not yet taken by the link: every answer we owe the peer (RESET, CREDIT, PONG) is
    // queued here when it does not read. Past the cap it is not reading: end, don't buffer.
    if (this.sendsInFlight >= SENDS_IN_FLIGHT_MAX) {
      const fault = new ProtocolError("flow-control", "peer does not read");
      this.end(fault);
      return Promise.reject(fault);
    }
    this.sendsInFlight++;
    return this.link.send(record).then(
      () => {
        this.sendsInFlight--;
      },
      (error) => {
        this.sendsInFlight--;
        this.end(error instanceof ProtocolError ? error : new ProtocolError("link-lost", "write failed"));
        throw error;
      },
    );
  }

  private async readLoop(): Promise<void> {
    try {
      for (;;) {
        const record = await this.link.recv();
        if (this.ended) return;
        if (record === null) return this.end(new ProtocolError("link-lost", "peer closed the link"));
        this.lastReceivedAt = this.o.clock.now();
        this.lastRecordAt = this.lastReceivedAt;
        this.askedAt = null;
        if (this.awaitingSince !== null) this.clearPingDeadline();
        this.dispatch(record);
      }
    } catch (error) {
      this.end(error instanceof ProtocolError ? error : new ProtocolError("link-lost", "read failed"));
      if (error instanceof AssertionError) throw error; // our bug: crash loudly, never hide it as link loss
    }
  }

  private dispatch(record: Uint8Array): void {
    const kind = record[0];
    const body = record.subarray(1);
    switch (kind) {
      case RecordKind.VCHAN:
        if (this.confirm.needed && !(this.confirm.mine && this.confirm.peer)) {
          throw new ProtocolError("unexpected-message", "vchan before pairing confirmation");
        }
        this.o.onVchan(record);
        return;
      case RecordKind.PING:
        if (body.length !== 8) throw new ProtocolError("frame-malformed", "ping");
        // A peer that pings and never reads would otherwise queue our answers in memory
        // without bound. Beyond the cap a ping goes unanswered, as a lost one would.
        if (this.pongsInFlight >= PONGS_IN_FLIGHT_MAX) return;
        this.pongsInFlight++;
        this.sendRecord(prefixed(RecordKind.PONG, body))
          .catch(() => {})
          .finally(() => {
            this.pongsInFlight--;
          });
        return;
      case RecordKind.PONG: {
        if (body.length !== 8) throw new ProtocolError("frame-malformed", "pong");
        const id = new DataView(body.buffer, body.byteOffset, 8).getBigUint64(0, false);
        const ping = this.pings.get(id);
        if (!ping) return; // late answer to a ping we gave up on
        this.pings.delete(id);
        this.rttMs = this.o.clock.now() - ping.sentAt;
        ping.resolve(this.rttMs);
        return;
      }
      case RecordKind.REKEY:
        return this.onRekeyMessage(body);
      case RecordKind.REKEY_SWITCH:
        if (this.o.initiator || this.pendingRecvKey === null || body.length !== 0) {
          throw new ProtocolError("unexpected-message", "rekey switch");
        }
        this.link.setRecvKey(this.pendingRecvKey);
        this.pendingRecvKey = null;
        return;
      case RecordKind.PAIR_REVEAL: {
        const pairing = this.codePairing;
        if (pairing?.role !== "checker" || this.code !== null) {
          throw new ProtocolError("unexpected-message", "pair reveal");
        }
        checkReveal(pairing.commitment, body);
        this.code = pairingCode(this.pairingHash, body, pairing.nonce);
        for (const w of this.codeWaiters.splice(0)) w.resolve(this.code);
        return;
      }
      case RecordKind.PAIR_CONFIRM:
        if (!this.confirm.needed || this.confirm.peer || this.code === null || body.length !== 0) {
          throw new ProtocolError("unexpected-message", "pair confirm");
        }
        this.confirm.peer = true;
        if (this.confirm.mine) for (const w of this.confirm.waiters.splice(0)) w.resolve();
        return;
      case RecordKind.CLOSE:
        if (body.length !== 1) throw new ProtocolError("frame-malformed", "close");
        return this.end(null);
      default:
        throw new ProtocolError("unexpected-message", "unknown record kind");
    }
  }

  private onRekeyMessage(message: Uint8Array): void {
    if (this.o.initiator) {
      // <- e, ee, se
      const hs = this.rekeyState;
      if (hs === null) throw new ProtocolError("unexpected-message", "unrequested rekey answer");
      decodeVersionPayload(hs.readMessage(message));
      const keys = hs.completed;
      this.rekeyState = null;
      this.link.setRecvKey(keys.receive);
      // The switch record is encrypted under the old key before the new one is installed.
      this.sendRecord(Uint8Array.of(RecordKind.REKEY_SWITCH)).catch(() => {});
      this.link.setSendKey(keys.send);
      this.installed(keys.handshakeHash);
      for (const w of this.rekeyWaiters.splice(0)) w.resolve();
      return;
    }
    if (this.pendingRecvKey !== null) throw new ProtocolError("unexpected-message", "overlapping rekey");
    // -> e, es, s, ss
    const hs = this.newRekeyState(false);
    decodeVersionPayload(hs.readMessage(message));
    if (!equalBytes(hs.remoteStatic!, this.peerKey))
      throw new ProtocolError("handshake-unknown-key", "rekey");
    // <- e, ee, se
    const msg2 = hs.writeMessage(encodeVersionPayload(this.o.version));
    const keys = hs.completed;
    this.sendRecord(prefixed(RecordKind.REKEY, msg2)).catch(() => {});
    this.link.setSendKey(keys.send);
    this.pendingRecvKey = keys.receive;
    this.installed(keys.handshakeHash);
  }

  private installed(h: Uint8Array): void {
    this.rekeys++;
    this.handshakeHash = h;
    this.keyEstablishedAt = this.o.clock.now();
  }

  /** The keepalive period: the option (default 10 s), no longer than the link's own ceiling. */
  private get keepaliveInterval(): number {
    const ceiling = this.link.timing?.keepaliveIntervalMs ?? Number.POSITIVE_INFINITY;
    return Math.min(this.o.keepaliveIntervalMs ?? KEEPALIVE_INTERVAL_MS, ceiling);
  }

  private get keepaliveTimeout(): number {
    const ceiling = this.link.timing?.keepaliveTimeoutMs ?? Number.POSITIVE_INFINITY;
    return Math.min(this.o.keepaliveTimeoutMs ?? KEEPALIVE_TIMEOUT_MS, ceiling);
  }

  private get tickMs(): number {
    // Several ticks per timeout, so a dead peer is declared close to the timeout, not a tick late.
    // And often enough that a probe (PING_PROBE_AFTER_MS) goes out close to its time.
    return Math.min(this.keepaliveInterval / 2, this.keepaliveTimeout / 6, PING_PROBE_AFTER_MS / 2);
  }

  private scheduleTick(): void {
    this.cancelTimer = this.o.clock.setTimer(this.tickMs, () => {
      if (this.ended) return;
      this.tick();
      this.scheduleTick();
    });
  }

  private tick(): void {
    const now = this.o.clock.now();
    // A tick far later than scheduled means this process was not running (a loaded machine, a
    // paused VM, SIGSTOP): records may be waiting unread, and the silence was ours, not the
    // peer's. No verdict now: the peer gets a fresh ping and its deadline decides.
    const late = now - this.lastTickAt > Math.max(3 * this.tickMs, this.tickMs + TIMER_LATE_MS);
    this.lastTickAt = now;
    if (late) {
      this.resumeGraceUntil = now + PING_ANSWER_TIMEOUT_MS + PING_VERDICT_CONFIRM_MS;
      this.clearPingDeadline();
      this.ping().catch(() => {});
    }
    const lineBytes = this.link.bytesReceived ?? 0;
    if (lineBytes !== this.lastLineBytes) {
      this.lastLineBytes = lineBytes;
      // Bytes are a sign of life (a slow line inside one long frame), but anyone on the line can
      // send bytes: they never keep a session without authenticated records past the TCP
      // dead-peer time, so line noise cannot hold callers for ever instead of failing them.
      if (now - this.lastRecordAt < KEEPALIVE_TIMEOUT_MS)
        this.lastReceivedAt = Math.max(this.lastReceivedAt, now);
    }
    if (now >= this.resumeGraceUntil && now - this.lastReceivedAt > this.keepaliveTimeout) {
      return this.end(new ProtocolError("keepalive-timeout"));
    }
    // Idle: a keepalive. Or we asked for something and have heard nothing since: probe at once,
    // so a peer that stopped hearing us (a desynchronised TCP stream) is found out in seconds.
    const idle = now - this.lastSentAt > this.keepaliveInterval;
    const unheard = this.askedAt !== null && now - this.askedAt > PING_PROBE_AFTER_MS;
    if (!late && (idle || (unheard && this.awaitingSince === null))) {
      this.ping().catch(() => {});
    }
    const due = now - this.keyEstablishedAt > (this.o.rekeyAfterMs ?? REKEY_AFTER_MS);
    if (this.o.initiator && due && this.rekeyState === null) this.rekey().catch(() => {});
  }

  /** A ping was written: unless one is already waiting, nothing heard by the deadline ends us. */
  private armPingDeadline(): void {
    if (this.ended || this.awaitingSince !== null) return;
    const since = this.o.clock.now();
    this.awaitingSince = since;
    const generation = ++this.awaitGeneration;
    this.cancelDeadline = this.o.clock.setTimer(PING_ANSWER_TIMEOUT_MS, () =>
      this.pingDeadline(generation, since + PING_ANSWER_TIMEOUT_MS, false),
    );
  }

  private clearPingDeadline(): void {
    this.awaitingSince = null;
    this.awaitGeneration++;
    this.cancelDeadline();
  }

  /**
   * The deadline of the ping written at awaitingSince. Ends the session only when no record
   * (nor, on serial, a line byte) came since, the timer was on time, and a short second look
   * (after the read loop had its turn) agrees.
   */
  private pingDeadline(generation: number, due: number, confirming: boolean): void {
    if (this.ended || generation !== this.awaitGeneration || this.awaitingSince === null) return;
    const now = this.o.clock.now();
    if (now - due > TIMER_LATE_MS) {
      // We were not running: the peer gets a fresh ping and a whole deadline.
      this.clearPingDeadline();
      this.ping().catch(() => {});
      return;
    }
    const lineBytes = this.link.bytesReceived ?? 0;
    if (this.lastReceivedAt > this.awaitingSince || lineBytes !== this.lastLineBytes) {
      // Heard something (serial: bytes of a long frame still arriving): alive.
      this.clearPingDeadline();
      return;
    }
    if (!confirming) {
      this.cancelDeadline = this.o.clock.setTimer(PING_VERDICT_CONFIRM_MS, () =>
        this.pingDeadline(generation, now + PING_VERDICT_CONFIRM_MS, true),
      );
      return;
    }
    this.end(new ProtocolError("ping-unanswered"));
  }

  private end(error: ProtocolError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.cancelTimer();
    this.cancelDeadline();
    this.link.close();
    // Everyone still waiting on this session learns why it ended (and nothing else holds them).
    const reason = error ?? new ProtocolError("link-lost", "session closed");
    this.endReason = reason;
    for (const w of [
      ...this.pings.values(),
      ...this.rekeyWaiters,
      ...this.confirm.waiters,
      ...this.codeWaiters,
    ])
      w.reject(reason);
    this.pings.clear();
    this.rekeyWaiters = [];
    this.confirm.waiters = [];
    this.codeWaiters = [];
    this.resolveClosed(error);
  }
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: ProtocolError): void;
}

function prefixed(kind: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = kind;
  out.set(body, 1);
  return out;
}
