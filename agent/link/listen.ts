/**
 * Where hosts reach the agent: a TCP listener and/or a tty (USB gadget serial).
 *
 * TCP: every connection is a handshake attempt. One source address may start one every
 * handshakeMinIntervalMs (a faster one is closed at once, refused with code handshake-rate,
 * why=too-frequent), before any crypto runs; the table of last starts is bounded
 * (RATE_TABLE_MAX). Admitted connections go into the half-open table (half-open.ts): the offer
 * must arrive within OFFER_TIMEOUT_MS, one address holds at most HALF_OPEN_PER_ADDRESS
 * unauthenticated handshakes, and a full table evicts the oldest of the address holding the
 * most, strangers' before known hosts' addresses; a host that proved its pinned key is never
 * evicted. An evicted handshake ends with handshake-rate, a late offer with handshake-timeout.
 * Limits that hold for all addresses together, so that a flood from many addresses (or rotated
 * ports) neither exhausts memory nor CPU nor keeps the paired host out: at most HALF_OPEN_MAX
 * half-open handshakes, and DH work paid from the global budget (dh-budget.ts) with a reserved
 * share for known host addresses. Refusals are counted, not logged one line each
 * (refusal-log.ts).
 * tty: one session at a time on the line; the handshake starts when the first bytes arrive (an
 * idle line never times out). When a session ends the line is reopened and the handshake
 * frames the old link received but did not use are carried over (a host that restarted its
 * handshake is not lost). A session that ends on a fault first says so on the line (a RESET
 * frame, core/session/serial-record-link.ts), so the host reconnects at once. After a session
 * the line is read again at once; after a failed handshake within TTY_RETRY_MAX_MS; a line that
 * gives no bytes (fails to open, EOF) backs off up to TTY_BACKOFF_MAX_MS.
 * The line has one peer, the host, so there is nothing to evict.
 * Must never: let a flood of connections run unbounded handshakes, let anonymous connections
 * keep a pinned host out, or spin on a dead tty.
 */

import type { Duplex } from "../../core/session/duplex.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { SerialRecordLink } from "../../core/session/serial-record-link.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { HALF_OPEN_MAX, HALF_OPEN_PER_ADDRESS, OFFER_TIMEOUT_MS } from "../../core/wire/limits.ts";
import type { SerialFrame } from "../../core/wire/serial-frame.ts";
import { platform } from "../../platform/index.ts";
import { openSerial } from "../../transport/serial.ts";
import { type TcpListener, tcpListen } from "../../transport/tcp.ts";
import type { TcpAddress } from "../config.ts";
import type { Log } from "../log.ts";
import type { DhBudget } from "./dh-budget.ts";
import { gcPaced } from "./gc-pacing.ts";
import { HalfOpenTable } from "./half-open.ts";
import { HalfOpenLink } from "./half-open-link.ts";
import type { RefusalLog } from "./refusal-log.ts";
import type { SessionManager } from "./sessions.ts";

/** Source addresses whose last handshake start is remembered (handshakeMinIntervalMs). */
const RATE_TABLE_MAX = 1024;
const TTY_BACKOFF_MIN_MS = 100;
const TTY_BACKOFF_MAX_MS = 5000;
/**
 * Longest wait after a failed handshake on a line that does carry bytes: short, because a
 * waiting host's next attempt (SERIAL_HANDSHAKE_TIMEOUT_MS apart) must find the line read;
 * still a pause, so a stream of bad handshakes cannot keep the device busy with DH work.
 */
const TTY_RETRY_MAX_MS = 400;

export interface Stoppable {
  stop(): Promise<void>;
}

/** What the TCP listener shares with the rest of the agent: the DH budget and the refusal counts. */
export interface TcpAdmission {
  readonly budget: DhBudget;
  readonly refusals: RefusalLog;
}

export async function listenTcp(
  addr: TcpAddress,
  sessions: SessionManager,
  log: Log,
  minIntervalMs: number,
  admission: TcpAdmission,
): Promise<TcpListener> {
  const { budget, refusals } = admission;
  const lastStart = new Map<string, number>();
  const table = new HalfOpenTable(
    { max: HALF_OPEN_MAX, perAddress: HALF_OPEN_PER_ADDRESS, offerTimeoutMs: OFFER_TIMEOUT_MS },
    systemClock,
    (address) => budget.known.has(address),
  );
  const listener = await tcpListen(addr.host, addr.port, (stream, peer) => {
    const via = stream.description;
    const source = peer.address;
    const now = platform.monotonicMs();
    const last = lastStart.get(source);
    if (last !== undefined && now - last < minIntervalMs) {
      refusals.refused({ via, code: "handshake-rate", why: "too-frequent" });
      stream.close();
      return;
    }
    const link = new HalfOpenLink(new TcpRecordLink(gcPaced(stream)), {
      spend: (ops) => budget.spend(source, ops),
      hostConnected: () => budget.known.add(source),
    });
    const slot = table.admit(source, (reason) => link.kill(reason));
    if (!slot) {
      refusals.refused({ via, code: "handshake-rate", why: "too-many-handshakes" });
      stream.close();
      return;
    }
    link.attach(slot);
    if (lastStart.size >= RATE_TABLE_MAX) {
      for (const [k, t] of lastStart) if (now - t >= minIntervalMs) lastStart.delete(k);
      // Still full (more fresh addresses than the table holds): forget the oldest starts. The
      // per-address spacing is a courtesy limit; the global ones above still hold.
      for (const k of lastStart.keys()) {
        if (lastStart.size < RATE_TABLE_MAX) break;
        lastStart.delete(k);
      }
    }
    lastStart.delete(source); // re-inserted last: the Map's order is the order of starts
    lastStart.set(source, now);
    void sessions
      .serve(link, via, () => slot.done())
      .finally(() => {
        slot.done();
        stream.close();
      });
  });
  log("listening", { tcp: `${addr.host}:${listener.port}`, port: listener.port });
  return listener;
}

/** The stream with `first` (already read from it) delivered again before the rest. */
function withFirst(stream: Duplex, first: Uint8Array | null): Duplex {
  let pending = first;
  return {
    read() {
      const p = pending;
      pending = null;
      return p ? Promise.resolve(p) : stream.read();
    },
    write: (data) => stream.write(data),
    close: () => stream.close(),
  };
}

export function listenTty(path: string, sessions: SessionManager, log: Log): Stoppable {
  let stopped = false;
  let wake: (() => void) | null = null;
  let closeCurrent: (() => void) | null = null;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  const loop = (async () => {
    let carried: SerialFrame[] = [];
    let backoff = TTY_BACKOFF_MIN_MS;
    let lineState: "up" | "down" | null = null;
    while (!stopped) {
      let heard = false;
      let ok = false;
      try {
        const stream = await openSerial(path, { platform });
        closeCurrent = () => stream.close();
        if (lineState !== "up") log("listening", { tty: path });
        lineState = "up";
        // An idle line is not a handshake in progress: the handshake (and its deadline) starts
        // with the first bytes, unless frames carried over from the last link are waiting.
        const first = carried.length > 0 ? null : await stream.read();
        if (carried.length > 0 || first !== null) {
          heard = true;
          const link = new SerialRecordLink(gcPaced(withFirst(stream, first)), undefined, carried);
          closeCurrent = () => link.close();
          ok = await sessions.serve(link, `serial ${path}`);
          carried = link.carryOver();
          // A session that ended on a fault tells the host so (a RESET frame) before the line
          // is closed; the host then reconnects at once instead of waiting for its keepalive.
          link.close();
          await link.closed;
        }
        stream.close();
      } catch (error) {
        if (lineState !== "down") log("tty-unavailable", { tty: path, why: (error as Error).message });
        lineState = "down";
      }
      closeCurrent = null;
      if (stopped) break;
      // Bytes came, so the line works: after a session, and for carried handshake frames (a
      // host waiting for an answer), read on at once; after a failed handshake, wait a little
      // (never past TTY_RETRY_MAX_MS: the host's next attempt must find us reading). A line that
      // gives nothing (open fails, EOF at once) backs off up to TTY_BACKOFF_MAX_MS.
      if (ok || carried.length > 0) {
        backoff = TTY_BACKOFF_MIN_MS;
        continue;
      }
      await pause(heard ? Math.min(backoff, TTY_RETRY_MAX_MS) : backoff);
      backoff = Math.min(backoff * 2, heard ? TTY_RETRY_MAX_MS : TTY_BACKOFF_MAX_MS);
    }
  })();
  return {
    async stop() {
      stopped = true;
      closeCurrent?.();
      (wake as (() => void) | null)?.();
      await loop;
    },
  };
}
