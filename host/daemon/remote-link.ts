/**
 * One remote qube's link, kept up by the daemon: connect (IK, host as initiator, with a
 * persisted strictly increasing timestamp), watch the session, reconnect with exponential
 * backoff (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS; back to the minimum after a session that
 * stayed up GOOD_SESSION_MS), and ping every keepalive for the RTT. Hotplug calls wake() (retry
 * now) and unplugged() (the device is gone: end the session, wait for it to come back).
 *
 * States shown by `list`: "up", "connecting", "down: <code>" (a fixed code: ECONNREFUSED,
 * handshake-decrypt, link-lost, absent ...).
 * Serial (issue 9): after a line fault (LINE_FAULTS: a lost or bad frame, the peer's RESET,
 * a keepalive or handshake timeout, a stuck write) the delay never exceeds
 * SERIAL_RECONNECT_MAX_MS, because an attempt costs two small frames on a line nobody else uses
 * and the link must be back within 2 s of the line working; other failures back off as above.
 * Must never: run two sessions for one remote, spin without a delay on repeated failures, or
 * open a call channel on a session that is not up.
 */
import type { Connected, LinkTuning } from "../../core/session/establish.ts";
import { connectAsInitiator } from "../../core/session/establish.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { SERIAL_RECONNECT_MAX_MS } from "../../core/wire/limits.ts";
import { platform } from "../../platform/index.ts";
import type { ByteStream } from "../../transport/transport.ts";
import { type LinkContext, tuningFor } from "./link-context.ts";
import type { RemoteEntry } from "./registry.ts";
import { failureCode, locateSerial, openTransport } from "./transport-open.ts";

export const BACKOFF_MIN_MS = 250;
export const BACKOFF_MAX_MS = 30_000;
const GOOD_SESSION_MS = 1000;
const STOP_WAIT_MS = 2000;
/** Failure codes that mean the line (not the peer's judgement) failed: see the header. */
const LINE_FAULTS = new Set([
  "link-lost",
  "link-reset",
  "keepalive-timeout",
  "ping-unanswered",
  "handshake-timeout",
  "write-timeout",
  "decrypt",
  "closed",
]);

export class RemoteLink {
  state = "connecting";
  rttMs: number | null = null;
  peerVersion: string | null = null;
  lastSeenMs: number | null;
  private connected: Connected | null = null;
  private stream: ByteStream | null = null;
  private stopped = false;
  private wakeUp: (() => void) | null = null;
  private delayMs: number;
  private lastLogged = "";

  constructor(
    public entry: RemoteEntry,
    private readonly ctx: LinkContext,
  ) {
    this.lastSeenMs = entry.lastSeen ? Date.parse(entry.lastSeen) : null;
    this.delayMs = ctx.backoff.minMs;
  }

  get name(): string {
    return this.entry.name;
  }

  get isUp(): boolean {
    return this.connected?.session.isOpen === true;
  }

  /** Starts the connect loop; `adopted` is a session that pairing just established. */
  start(adopted?: { connected: Connected; stream: ByteStream }): void {
    if (adopted) {
      this.connected = adopted.connected;
      this.stream = adopted.stream;
    }
    void this.loop();
  }

  /** Retry now (hotplug saw the device or its network interface appear). */
  wake(): void {
    this.delayMs = this.ctx.backoff.minMs;
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  /** The device vanished (its by-id entry is gone): end the session now. */
  unplugged(): void {
    this.endSession();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const session = this.connected?.session;
    this.wake();
    if (session?.isOpen) {
      session.close();
      // The CLOSE record may never be written (a serial line nobody reads): do not wait long.
      await Promise.race([session.closed, new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref?.())]);
    }
    this.stream?.close();
  }

  /** A channel for a call, or null when the link is not up. Throws on the channel limit. */
  openCall(meta: Uint8Array): Channel | null {
    if (!this.isUp) return null;
    return this.connected!.vchan.open(meta, "call");
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.connected) {
        await this.runSession(this.connected);
        continue;
      }
      const serial = "serial" in this.entry.transport;
      const path = serial ? await locateSerial(this.entry, this.ctx.byIdDir) : null;
      if (serial && path === null) {
        this.setState("down: absent");
        await this.sleep(null); // hotplug wakes us when the device appears
        continue;
      }
      this.setState("connecting");
      try {
        await this.connect(path);
      } catch (e) {
        const code = failureCode(e);
        this.setState(`down: ${code}`);
        await this.sleep(this.nextDelay(code));
      }
    }
  }

  private async connect(serialPath: string | null): Promise<void> {
    const opened = await openTransport(this.entry.transport, serialPath);
    let ts: bigint;
    try {
      ts = await this.ctx.timestamps.next();
    } catch (e) {
      opened.stream.close();
      throw e;
    }
    const connected = await connectAsInitiator(
      {
        link: opened.link,
        resolver: this.ctx.resolver,
        staticKey: this.ctx.staticKey,
        version: this.ctx.version,
        suites: this.ctx.suites,
        mode: "reconnect",
        responderKey: this.entry.agentKey,
        ...(this.entry.pairingId ? { pairingId: this.entry.pairingId } : {}),
        timestamp: () => ts,
      },
      this.tuning(),
    );
    if (this.stopped) {
      connected.session.close();
      return;
    }
    this.connected = connected;
    this.stream = opened.stream;
  }

  /** The tuning for this remote's sessions (pairing uses it too, so calls in are routed). */
  tuning(): LinkTuning {
    return tuningFor(this.ctx, (channel, meta) => this.ctx.onIncoming(this.name, channel, meta));
  }

  private async runSession(c: Connected): Promise<void> {
    const started = platform.monotonicMs();
    this.peerVersion = c.session.peerVersion;
    // One round trip before "up", so list shows an RTT from the start.
    this.rttMs = await Promise.race([c.session.ping().catch(() => null), c.session.closed.then(() => null)]);
    this.seen(true);
    if (c.session.isOpen) this.setState("up");
    const ping = () =>
      c.session.ping().then(
        (rtt) => {
          this.rttMs = rtt;
          this.seen(false);
        },
        () => {},
      );
    const timer = setInterval(ping, this.ctx.keepaliveMs);
    const end = await c.session.closed;
    clearInterval(timer);
    this.connected = null;
    this.stream = null;
    this.rttMs = null;
    // "Last seen" stays at the last answer: a device that went silent was not seen until now.
    if (this.lastSeenMs !== null) this.ctx.onSeen(this.name, this.lastSeenMs);
    if (this.stopped) return;
    const code = end?.code ?? "closed";
    this.setState(`down: ${code}`);
    if (platform.monotonicMs() - started >= GOOD_SESSION_MS) {
      this.delayMs = this.ctx.backoff.minMs; // a good session: reconnect at once
      return;
    }
    await this.sleep(this.nextDelay(code));
  }

  /** The delay before the next attempt (doubling for the one after), capped on serial line faults. */
  private nextDelay(code: string): number {
    const lineFault = "serial" in this.entry.transport && LINE_FAULTS.has(code);
    const ms = lineFault ? Math.min(this.delayMs, SERIAL_RECONNECT_MAX_MS) : this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.ctx.backoff.maxMs);
    return ms;
  }

  private endSession(): void {
    const c = this.connected;
    if (!c) return;
    this.stream?.close(); // the device is gone: do not wait for a CLOSE record to be written
    c.session.close();
  }

  private seen(persist: boolean): void {
    this.lastSeenMs = platform.now();
    if (persist) this.ctx.onSeen(this.name, this.lastSeenMs);
  }

  private sleep(ms: number | null): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = ms === null ? null : setTimeout(() => done(), ms);
      const done = () => {
        if (timer) clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      };
      this.wakeUp = done;
    });
  }

  /** Logs "up" and each new "down" reason; a retry loop failing the same way logs once. */
  private setState(state: string): void {
    if (state === this.state) return;
    this.state = state;
    if (state === "connecting" || state === this.lastLogged) return;
    this.lastLogged = state;
    const rtt = this.rttMs === null ? "" : `, rtt ${this.rttMs.toFixed(2)} ms`;
    this.ctx.log(`${this.name}: ${state}${state === "up" ? ` (agent ${this.peerVersion}${rtt})` : ""}`);
  }
}
