/**
 * RecordLink over a serial line (USB CDC-ACM, FTDI, a pty): COBS frames with an explicit key
 * epoch and 64-bit counter (core/wire/serial-frame.ts), because a line can drop, flip or insert
 * bytes (noise-transport.md §4, §7.7). The counter is the Noise nonce (spec §11.4 SetNonce);
 * a replay window refuses a counter seen before; a CRC failure is line noise and is dropped.
 *
 * Handshake frames carry an attempt id in their counter field: the initiator picks a random
 * one per attempt and the responder echoes it, so a stale handshake frame left in a tty buffer
 * by an earlier attempt is ignored instead of derailing this one. A lost handshake frame does
 * not cost the attempt: while the initiator waits for an answer it repeats its last message
 * every SERIAL_HANDSHAKE_RESEND_MS, and the responder answers a repeat of the last message it
 * received by repeating its own answer (never running Noise on a repeat, so an IK timestamp is
 * never presented twice); a repeat that arrives after the session is up is ignored. A slow
 * device (an fsync on a busy SD card) thus gets the whole SERIAL_HANDSHAKE_TIMEOUT_MS, and a
 * line that starts working again is answered within one resend period. A handshake frame arriving
 * during a session means the peer restarted: the session ends, and carryOver() hands that frame
 * to the next link on the same line so the new handshake is not lost.
 *
 * This layer does not retransmit. A transport record that is lost (a counter gap) ends the
 * session with "link-lost", and the host's reconnect loop brings the link back; data is never
 * delivered out of order or with a hole in it.
 *
 * Noticing (issue 9): the side that ends a session in transport phase says so with a cleartext
 * RESET frame naming the session's attempt id, written before the line is closed (for at most
 * SERIAL_RESET_WRITE_MS: the line may be stalled), so the peer ends too and the host reconnects
 * at once. A RESET is unauthenticated, so the only thing it can do is end the session whose
 * attempt id it names, with "link-reset": a line attacker can do as much by flipping one bit of
 * any frame. A stale RESET (another attempt id) is ignored. When a RESET is lost, the serial
 * keepalive (SERIAL_KEEPALIVE_*, offered as `timing`) ends the session within 1.5 s; any byte
 * from the line counts as life (bytesReceived), so a slow UART in the middle of a long frame is
 * not declared dead. A responder that restarted (killed, power cut) cannot name the session the
 * initiator still has: when it reads transport frames while waiting for a handshake it answers
 * with a "no session here" RESET (body 0x01, core/wire/serial-frame.ts), and the initiator ends
 * its session at once instead of after its keepalive.
 * Must never: deliver a record that failed CRC or AEAD, accept a counter twice, advance the
 * replay window before authentication, or let a RESET do anything but end the session it names.
 */
import { equalBytes } from "../bytes.ts";
import { assert, ProtocolError } from "../errors.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import {
  AEAD_TAG_BYTES,
  SERIAL_HANDSHAKE_RESEND_MS,
  SERIAL_HANDSHAKE_TIMEOUT_MS,
  SERIAL_KEEPALIVE_INTERVAL_MS,
  SERIAL_KEEPALIVE_TIMEOUT_MS,
  SERIAL_MAX_BODY,
  SERIAL_NO_SESSION_EVERY_MS,
  SERIAL_RESET_WRITE_MS,
} from "../wire/limits.ts";
import {
  encodeSerialFrame,
  type SerialFrame,
  SerialFrameReader,
  SerialFrameType,
} from "../wire/serial-frame.ts";
import type { Duplex } from "./duplex.ts";
import type { LinkTiming, RecordLink } from "./record-link.ts";
import { ReplayWindow } from "./replay-window.ts";

/** AD = type | epoch: binds the unauthenticated header fields to the ciphertext. */
function headerAd(epoch: number): Uint8Array {
  return Uint8Array.of(SerialFrameType.TRANSPORT, epoch);
}
/** AEAD failures on CRC-good frames tolerated before we call it an attack and end the session. */
const MAX_AUTH_FAILURES = 8;

export interface SerialLinkStats {
  readonly framesDropped: number;
  readonly bytesDiscarded: number;
  readonly replaysRefused: number;
  readonly authFailures: number;
}

const SERIAL_TIMING: LinkTiming = {
  keepaliveIntervalMs: SERIAL_KEEPALIVE_INTERVAL_MS,
  keepaliveTimeoutMs: SERIAL_KEEPALIVE_TIMEOUT_MS,
  handshakeTimeoutMs: SERIAL_HANDSHAKE_TIMEOUT_MS,
};

/** The RESET body: one fixed byte (a frame body is never empty). */
const RESET_BODY = Uint8Array.of(0);
/** The body of a responder's "no session here" RESET (counter 0). */
const NO_SESSION_BODY = Uint8Array.of(1);

export class SerialRecordLink implements RecordLink {
  readonly transport = "serial";
  readonly maxRecord = SERIAL_MAX_BODY - AEAD_TAG_BYTES;
  readonly timing = SERIAL_TIMING;
  /** Line bytes read so far (the session's sign of life between frames). */
  bytesReceived = 0;
  /** Resolves once the line is closed (after the RESET frame went out, or its deadline). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private closing = false;
  private resetByPeer = false;
  private readonly initiator: boolean;
  /** Our last handshake frame, encoded: repeated while we wait (initiator) or on request. */
  private lastSent: Uint8Array | null = null;
  /** Handshake message bodies received in this attempt, to recognise repeats. */
  private readonly received: Uint8Array[] = [];
  private readonly reader = new SerialFrameReader();
  private attemptId: bigint | null;
  private sendKey: CipherState | null = null;
  private sendEpoch = 0;
  private recvKey: CipherState | null = null;
  private recvEpoch = 0;
  private window = new ReplayWindow();
  private expected = 0n;
  private records = 0;
  private replays = 0;
  private authFailures = 0;
  private readonly pending: SerialFrame[];
  /** When this responder last said "no session here" (performance.now()). */
  private noSessionSentAt = Number.NEGATIVE_INFINITY;

  /**
   * The initiator passes a fresh random attemptId; the responder adopts the first it sees.
   * `carried` are frames a previous link on this line received but did not use (carryOver()).
   */
  constructor(
    private readonly stream: Duplex,
    attemptId?: bigint,
    carried: readonly SerialFrame[] = [],
  ) {
    this.attemptId = attemptId ?? null;
    this.initiator = attemptId !== undefined;
    this.pending = [...carried];
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** Handshake frames received but not consumed, for the next link on the same line. */
  carryOver(): SerialFrame[] {
    const frames = [...this.pending, ...this.reader.drain()];
    this.pending.length = 0;
    return frames.filter((f) => f.type === SerialFrameType.HANDSHAKE);
  }

  get recordsSinceKey(): number {
    return this.records;
  }

  get stats(): SerialLinkStats {
    return {
      framesDropped: this.reader.framesDropped,
      bytesDiscarded: this.reader.bytesDiscarded,
      replaysRefused: this.replays,
      authFailures: this.authFailures,
    };
  }

  async sendHandshake(message: Uint8Array): Promise<void> {
    assert(this.sendKey === null && this.attemptId !== null, "handshake send out of order");
    const frame = { type: SerialFrameType.HANDSHAKE, epoch: 0, counter: this.attemptId, body: message };
    this.lastSent = encodeSerialFrame(frame, { leadingDelimiter: true });
    await this.stream.write(this.lastSent);
  }

  async recvHandshake(): Promise<Uint8Array> {
    assert(this.recvKey === null, "handshake message after keys");
    // The initiator repeats its last message while it waits (see the header): a lost frame
    // costs SERIAL_HANDSHAKE_RESEND_MS, not a whole new attempt.
    const resend =
      this.initiator && this.lastSent
        ? setInterval(
            () => void this.stream.write(this.lastSent!).catch(() => {}),
            SERIAL_HANDSHAKE_RESEND_MS,
          )
        : null;
    try {
      for (;;) {
        const frame = await this.nextFrame();
        if (frame === null) throw new ProtocolError("link-lost", "line closed during handshake");
        if (frame.type !== SerialFrameType.HANDSHAKE) {
          // Left over from an old session. A responder not yet in an attempt reading transport
          // frames: the initiator still has a session with our previous life. Tell it.
          if (!this.initiator && this.attemptId === null && frame.type === SerialFrameType.TRANSPORT)
            this.sayNoSession();
          continue;
        }
        if (this.attemptId === null) {
          // Responder: after a stall several attempts may wait in the line, oldest first; the
          // initiator has given up on all but the newest, so answer only that one.
          const newest = this.newestWaitingHandshake() ?? frame;
          this.attemptId = newest.counter;
          this.received.push(newest.body);
          return newest.body;
        }
        if (frame.counter !== this.attemptId) {
          if (this.initiator) continue; // an answer to an attempt we gave up on
          // The initiator gave up on this attempt and began another (frames stay in order on a
          // line): end this one now and let the next link answer it, instead of waiting out
          // the deadline while the initiator waits out its own.
          this.pending.push(frame);
          throw new ProtocolError("link-lost", "peer restarted its handshake");
        }
        if (this.isRepeat(frame)) continue;
        this.received.push(frame.body);
        return frame.body;
      }
    } finally {
      if (resend) clearInterval(resend);
    }
  }

  /**
   * A handshake frame of this attempt that we already have: the initiator repeating itself
   * because our answer is slow or was lost. The responder answers the latest one again.
   */
  private isRepeat(frame: SerialFrame): boolean {
    const i = this.received.findIndex((b) => equalBytes(b, frame.body));
    if (i === -1) return false;
    if (!this.initiator && i === this.received.length - 1 && this.lastSent) {
      void this.stream.write(this.lastSent).catch(() => {});
    }
    return true;
  }

  setSendKey(cs: CipherState): void {
    this.sendKey = cs;
    this.sendEpoch = (this.sendEpoch + 1) & 0xff;
    this.records = 0;
  }

  setRecvKey(cs: CipherState): void {
    this.recvKey = cs;
    this.recvEpoch = (this.recvEpoch + 1) & 0xff;
    this.window = new ReplayWindow();
    this.expected = 0n;
    this.records = 0;
  }

  send(plaintext: Uint8Array): Promise<void> {
    assert(this.sendKey !== null, "send before keys");
    assert(plaintext.length <= this.maxRecord, "record too large for a serial frame");
    const counter = this.sendKey.nonce;
    const body = this.sendKey.encryptWithAd(headerAd(this.sendEpoch), plaintext);
    this.records++;
    const frame = { type: SerialFrameType.TRANSPORT, epoch: this.sendEpoch, counter, body };
    return this.stream.write(encodeSerialFrame(frame, { leadingDelimiter: true }));
  }

  async recv(): Promise<Uint8Array | null> {
    const key = this.recvKey;
    assert(key !== null, "recv before keys");
    for (;;) {
      const frame = await this.nextFrame();
      if (frame === null) return null;
      if (frame.type === SerialFrameType.HANDSHAKE) {
        if (frame.counter === this.attemptId && this.isRepeat(frame)) continue;
        this.pending.push(frame);
        this.resetByPeer = true; // the peer has left this session: no RESET to send it
        throw new ProtocolError("link-lost", "peer restarted its handshake");
      }
      if (frame.type === SerialFrameType.RESET) {
        const noSession = this.initiator && frame.counter === 0n && equalBytes(frame.body, NO_SESSION_BODY);
        if (noSession) {
          this.resetByPeer = true;
          throw new ProtocolError("link-reset", "peer has no session (it restarted)");
        }
        if (frame.counter !== this.attemptId) continue; // from an earlier session on this line
        this.resetByPeer = true;
        throw new ProtocolError("link-reset", "peer ended the session");
      }
      if (frame.epoch !== this.recvEpoch) continue; // from before a key switch: stale
      if (!this.window.check(frame.counter)) {
        this.replays++;
        continue;
      }
      let plaintext: Uint8Array;
      try {
        key.setNonce(frame.counter);
        plaintext = key.decryptWithAd(headerAd(frame.epoch), frame.body);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        if (++this.authFailures > MAX_AUTH_FAILURES)
          throw new ProtocolError("decrypt", "too many forged frames");
        continue;
      }
      this.window.commit(frame.counter);
      if (frame.counter !== this.expected) throw new ProtocolError("link-lost", "a frame was lost");
      this.expected = frame.counter + 1n;
      this.records++;
      return plaintext;
    }
  }

  /**
   * Ends the link: in transport phase a RESET goes out first (unless the peer sent one), then
   * the line is closed; `closed` says when. Idempotent.
   */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    const inSession = this.sendKey !== null && this.attemptId !== null;
    this.sendKey?.clear();
    this.recvKey?.clear();
    const done = () => {
      this.stream.close();
      this.resolveClosed();
    };
    if (!inSession || this.resetByPeer) return done();
    const frame = { type: SerialFrameType.RESET, epoch: 0, counter: this.attemptId!, body: RESET_BODY };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, SERIAL_RESET_WRITE_MS);
    });
    const written = this.stream.write(encodeSerialFrame(frame, { leadingDelimiter: true })).catch(() => {});
    void Promise.race([written, deadline]).then(() => {
      clearTimeout(timer);
      done();
    });
  }

  private sayNoSession(): void {
    const now = performance.now();
    if (now - this.noSessionSentAt < SERIAL_NO_SESSION_EVERY_MS) return;
    this.noSessionSentAt = now;
    const frame = { type: SerialFrameType.RESET, epoch: 0, counter: 0n, body: NO_SESSION_BODY };
    void this.stream.write(encodeSerialFrame(frame, { leadingDelimiter: true })).catch(() => {});
  }

  /** The last handshake frame among those already received and not yet taken, if any. */
  private newestWaitingHandshake(): SerialFrame | null {
    let newest: SerialFrame | null = null;
    for (let f = this.pending.shift(); f !== undefined; f = this.pending.shift()) {
      if (f.type === SerialFrameType.HANDSHAKE) newest = f;
    }
    for (const f of this.reader.drain()) if (f.type === SerialFrameType.HANDSHAKE) newest = f;
    return newest;
  }

  private async nextFrame(): Promise<SerialFrame | null> {
    const carried = this.pending.shift();
    if (carried !== undefined) return carried;
    for (;;) {
      const frame = this.reader.next();
      if (frame !== undefined) return frame;
      const chunk = await this.stream.read();
      if (chunk === null) return null;
      this.bytesReceived += chunk.length;
      this.reader.push(chunk);
    }
  }
}
