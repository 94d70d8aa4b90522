/**
 * Unit tests of Session (session.ts) over fake record links: the records it sends and accepts,
 * when it switches keys in a rekey, keepalive and its timeout, pairing confirmation, and close.
 * Random input is in test/fuzz/session.fuzz.test.ts; handshakes and rekeys over real framing are
 * in establish.test.ts.
 */
import { describe, expect, test } from "bun:test";
import {
  expectHealthy,
  KNOWN_KINDS,
  keyedCipher,
  runSession,
  type Step,
  SUITE,
  suite,
} from "../../test/helpers/session-script.ts";
import { AssertionError, ProtocolError } from "../errors.ts";
import type { CipherState } from "../noise/cipher-state.ts";
import { HandshakeState } from "../noise/handshake-state.ts";
import { parsePattern } from "../noise/patterns.ts";
import { encodeVchan } from "../vchan/messages.ts";
import {
  NOISE_MAX_PLAINTEXT,
  PING_ANSWER_TIMEOUT_MS,
  PING_PROBE_AFTER_MS,
  PING_VERDICT_CONFIRM_MS,
} from "../wire/limits.ts";
import type { Clock } from "./duplex.ts";
import { generateStaticKeyPair, type StaticKeyPair } from "./key-text.ts";
import { buildPrologue, encodeVersionPayload, type HandshakeMode, RecordKind } from "./messages.ts";
import { commitTo } from "./pairing-code.ts";
import type { RecordLink } from "./record-link.ts";
import { Session, type SessionOptions } from "./session.ts";

const INITIATOR_KEY = generateStaticKeyPair();
const RESPONDER_KEY = generateStaticKeyPair();
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A clock whose time moves only when the test says so; due timers run in order. */
class ManualClock implements Clock {
  t = 0;
  private readonly timers = new Set<{ at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimer(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + ms, fn };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers].filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers.delete(due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
  /** The process was paused for ms: time moves on, and every timer that came due fires late, at the end. */
  resume(ms: number): void {
    this.t += ms;
    for (;;) {
      const due = [...this.timers].filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers.delete(due);
      due.fn();
    }
  }
}

/** Records in plaintext (no framing, no AEAD); logs sends, receives and key switches in order. */
class FakeLink implements RecordLink {
  readonly transport = "tcp";
  readonly maxRecord = NOISE_MAX_PLAINTEXT;
  recordsSinceKey = 0;
  log: string[] = [];
  readonly sent: Uint8Array[] = [];
  sendKey: CipherState | null = null;
  recvKey: CipherState | null = null;
  peer: FakeLink | null = null;
  closed = false;
  private readonly inbox: (Uint8Array | null)[] = [];
  private waiter: ((r: Uint8Array | null) => void) | null = null;

  async sendHandshake(): Promise<void> {
    throw new Error("handshake message in the transport phase");
  }
  async recvHandshake(): Promise<Uint8Array> {
    throw new Error("handshake read in the transport phase");
  }
  setSendKey(cs: CipherState): void {
    this.sendKey = cs;
    this.log.push("send-key");
  }
  setRecvKey(cs: CipherState): void {
    this.recvKey = cs;
    this.log.push("recv-key");
  }
  async send(record: Uint8Array): Promise<void> {
    if (this.closed) throw new ProtocolError("link-lost", "closed");
    this.sent.push(record.slice());
    this.log.push(`send:${record[0]}`);
    this.peer?.deliver(record.slice());
  }
  /** A record from the peer; null is EOF. */
  deliver(record: Uint8Array | null): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(record);
    } else this.inbox.push(record);
  }
  async recv(): Promise<Uint8Array | null> {
    const next =
      this.inbox.length > 0
        ? this.inbox.shift()!
        : await new Promise<Uint8Array | null>((r) => {
            this.waiter = r;
          });
    if (next !== null) this.log.push(`recv:${next[0]}`);
    return next;
  }
  close(): void {
    this.closed = true;
    this.waiter?.(null);
    this.waiter = null;
  }
  kindsSent(): number[] {
    return this.sent.map((r) => r[0]!);
  }
}

interface Side {
  readonly session: Session;
  readonly link: FakeLink;
  readonly clock: ManualClock;
  readonly vchan: Uint8Array[];
}

/** The pairing nonces of pair-code sides: the responder commits, the initiator checks. */
const I_NONCE = new Uint8Array(32).fill(5);
const R_NONCE = new Uint8Array(32).fill(6);

function side(
  initiator: boolean,
  mode: HandshakeMode = "reconnect",
  o: Partial<SessionOptions> = {},
  start = true,
): Side {
  const [own, peer]: StaticKeyPair[] = initiator
    ? [INITIATOR_KEY, RESPONDER_KEY]
    : [RESPONDER_KEY, INITIATOR_KEY];
  const link = new FakeLink();
  const clock = new ManualClock();
  const vchan: Uint8Array[] = [];
  const session = new Session(
    link,
    {
      mode,
      suite: SUITE,
      result: {
        send: keyedCipher(initiator ? 1 : 2),
        receive: keyedCipher(initiator ? 2 : 1),
        handshakeHash: new Uint8Array(32).fill(9),
        remoteStatic: peer!.publicKey,
      },
      peerKey: peer!.publicKey,
      peerVersion: "peer-1",
      pairingId: new Uint8Array(16).fill(7),
      ...(mode === "pair-code"
        ? {
            codePairing: initiator
              ? { role: "checker" as const, nonce: I_NONCE, commitment: commitTo(R_NONCE) }
              : { role: "committer" as const, nonce: R_NONCE, peerNonce: I_NONCE },
          }
        : {}),
    },
    {
      initiator,
      staticKey: own!,
      suite,
      suiteName: SUITE,
      version: initiator ? "host-1" : "agent-1",
      clock,
      onVchan: (record) => vchan.push(record),
      ...o,
    },
  );
  link.log = []; // the constructor's key installation is not what the tests look at
  if (start) session.start();
  return { session, link, clock, vchan };
}

/** An initiator and a responder whose links deliver to each other, started once connected. */
function pair(mode: HandshakeMode = "reconnect"): [Side, Side] {
  const i = side(true, mode, {}, false);
  const r = side(false, mode, {}, false);
  i.link.peer = r.link;
  r.link.peer = i.link;
  i.session.start();
  r.session.start();
  return [i, r];
}

const ping = (kind: number, id: number) => {
  const r = new Uint8Array(9);
  r[0] = kind;
  new DataView(r.buffer).setBigUint64(1, BigInt(id), false);
  return r;
};

describe("rekey", () => {
  test("the initiator sends REKEY_SWITCH under the old send key, then installs the new one", async () => {
    const [i, r] = pair();
    const before = i.session.hash;
    await i.session.rekey();
    await flush();
    expect(i.link.log).toEqual(["send:4", "recv:4", "recv-key", "send:5", "send-key"]);
    expect(i.session.hash).not.toEqual(before);
    expect(i.session.hash).toEqual(r.session.hash);
    expect([i.session.rekeys, r.session.rekeys]).toEqual([1, 1]);
  });

  test("the responder answers under the old key, sends under the new one, and switches receive on REKEY_SWITCH only", async () => {
    const [i, r] = pair();
    await i.session.rekey();
    await flush();
    expect(r.link.log).toEqual(["recv:4", "send:4", "send-key", "recv:5", "recv-key"]);
    // The new keys pair up across the two sides.
    const sealed = i.link.sendKey!.encryptWithAd(new Uint8Array(0), Uint8Array.of(7));
    expect(r.link.recvKey!.decryptWithAd(new Uint8Array(0), sealed)).toEqual(Uint8Array.of(7));
    const back = r.link.sendKey!.encryptWithAd(new Uint8Array(0), Uint8Array.of(8));
    expect(i.link.recvKey!.decryptWithAd(new Uint8Array(0), back)).toEqual(Uint8Array.of(8));
  });

  test("a rekey signed by a static key other than the session's peer ends it with handshake-unknown-key", async () => {
    const r = side(false);
    const stranger = generateStaticKeyPair();
    const hs = new HandshakeState(`Noise_IK_${SUITE}`, {
      suite,
      pattern: parsePattern("IK")!,
      initiator: true,
      prologue: buildPrologue("tcp", new TextEncoder().encode("rekey"), r.session.hash),
      s: stranger,
      rs: RESPONDER_KEY.publicKey,
    });
    r.link.deliver(Uint8Array.of(RecordKind.REKEY, ...hs.writeMessage(encodeVersionPayload("x"))));
    expect((await r.session.closed)?.code).toBe("handshake-unknown-key");
    expect(r.link.kindsSent()).not.toContain(RecordKind.REKEY);
  });

  test("the initiator starts a rekey once a key has carried more than rekeyAfterRecords records", async () => {
    const i = side(true, "reconnect", { rekeyAfterRecords: 10 });
    i.link.recordsSinceKey = 10;
    await i.session.sendVchan(encodeVchan({ type: 3, id: 0 }));
    expect(i.link.kindsSent()).toEqual([RecordKind.VCHAN]);
    i.link.recordsSinceKey = 11;
    await i.session.sendVchan(encodeVchan({ type: 3, id: 2 }));
    expect(i.link.kindsSent()).toEqual([RecordKind.VCHAN, RecordKind.REKEY, RecordKind.VCHAN]);
    i.session.close();
  });

  test("the initiator starts a rekey when its key is older than rekeyAfterMs; the responder never does", () => {
    const i = side(true, "reconnect", { rekeyAfterMs: 1000 });
    const r = side(false, "reconnect", { rekeyAfterMs: 1000 });
    i.clock.advance(1000);
    r.clock.advance(1000);
    expect(i.link.kindsSent()).toEqual([]);
    i.clock.advance(1000);
    r.clock.advance(1000);
    // (The unanswered REKEY is followed by a probe PING: nothing came back for it.)
    expect(i.link.kindsSent().filter((k) => k !== RecordKind.PING)).toEqual([RecordKind.REKEY]);
    expect(r.link.kindsSent()).toEqual([]);
    expect(() => r.session.rekey()).toThrow(AssertionError);
    i.session.close();
    r.session.close();
  });
});

describe("keepalive", () => {
  test("an idle link gets a PING after the interval, and its PONG gives the round-trip time", async () => {
    const i = side(true, "reconnect", { keepaliveIntervalMs: 100 });
    i.clock.advance(100);
    expect(i.link.sent).toEqual([]);
    // The keepalive ticks more often than the interval; the PING goes out on the first tick after
    // the link was idle for the interval (by t = 200 at the latest).
    for (let t = 100; t < 200 && i.link.sent.length === 0; t += 10) i.clock.advance(10);
    expect(i.link.sent).toEqual([ping(RecordKind.PING, 1)]);
    i.clock.advance(30);
    i.link.deliver(ping(RecordKind.PONG, 1));
    await flush();
    expect(i.session.rttMs).toBe(30);
    i.session.close();
  });

  test("a PING from the peer is answered by a PONG with the same id; an unknown PONG is ignored", async () => {
    const r = side(false);
    r.link.deliver(ping(RecordKind.PING, 77));
    r.link.deliver(ping(RecordKind.PONG, 5));
    await flush();
    expect(r.link.sent).toEqual([ping(RecordKind.PONG, 77)]);
    expect(r.session.isOpen).toBe(true);
    expect(r.session.rttMs).toBeNull();
    r.session.close();
  });

  test("nothing received for longer than the timeout ends the session with keepalive-timeout", async () => {
    const i = side(true, "reconnect", { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 300 });
    const pending = i.session.ping().catch((e: unknown) => e);
    i.clock.advance(400);
    expect((await i.session.closed)?.code).toBe("keepalive-timeout");
    expect(i.link.closed).toBe(true);
    expect(await pending).toMatchObject({ code: "keepalive-timeout" });
  });

  test("records from the peer keep the session alive past the timeout", async () => {
    const r = side(false, "reconnect", { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 300 });
    for (let n = 1; n <= 10; n++) {
      r.clock.advance(100);
      r.link.deliver(ping(RecordKind.PING, n));
      await flush();
    }
    expect(r.session.isOpen).toBe(true);
    r.session.close();
  });
});

describe("ping deadline (a peer that stopped hearing us, e.g. a desynchronised TCP stream)", () => {
  /** Moves the clock in small steps, letting writes complete (and deadlines arm) in between. */
  async function run(s: Side, ms: number, step = 10): Promise<void> {
    for (let t = 0; t < ms && s.session.isOpen; t += step) {
      s.clock.advance(step);
      await flush();
    }
  }
  const kinds = (s: Side) => s.link.kindsSent();

  test("a PING with nothing authenticated back ends the session with ping-unanswered after PING_ANSWER_TIMEOUT_MS, not the 30 s keepalive", async () => {
    const i = side(true); // shipped defaults: 10 s keepalive, 30 s timeout
    const pending = i.session.ping().catch((e: unknown) => e);
    await flush();
    await run(i, PING_ANSWER_TIMEOUT_MS - 20);
    expect(i.session.isOpen).toBe(true);
    await run(i, 200);
    expect((await i.session.closed)?.code).toBe("ping-unanswered");
    expect(i.clock.t).toBeLessThanOrEqual(PING_ANSWER_TIMEOUT_MS + PING_VERDICT_CONFIRM_MS + 20);
    expect(i.link.closed).toBe(true);
    expect(await pending).toBeInstanceOf(ProtocolError);
  });

  test("any authenticated record after the PING counts as an answer (the PONG may be behind data)", async () => {
    const i = side(true);
    void i.session.ping().catch(() => {});
    await flush();
    await run(i, 1000);
    i.link.deliver(encodeVchan({ type: 3, id: 0 }));
    await flush();
    await run(i, 3000);
    expect(i.session.isOpen).toBe(true);
    i.session.close();
  });

  test("a record sent and nothing heard since: a probe PING after PING_PROBE_AFTER_MS, and its deadline", async () => {
    const i = side(true);
    await i.session.sendVchan(encodeVchan({ type: 3, id: 0 }));
    await run(i, PING_PROBE_AFTER_MS - 10);
    expect(kinds(i)).toEqual([RecordKind.VCHAN]);
    await run(i, PING_PROBE_AFTER_MS);
    expect(kinds(i)).toEqual([RecordKind.VCHAN, RecordKind.PING]);
    // One probe at a time: no PING storm while the first one waits.
    await run(i, PING_ANSWER_TIMEOUT_MS - 2 * PING_PROBE_AFTER_MS);
    expect(kinds(i)).toEqual([RecordKind.VCHAN, RecordKind.PING]);
    await run(i, 2 * PING_PROBE_AFTER_MS);
    expect((await i.session.closed)?.code).toBe("ping-unanswered");
  });

  test("an answered probe keeps the session; a quiet callee costs one PING per quiet period, no more", async () => {
    const i = side(true);
    await i.session.sendVchan(encodeVchan({ type: 3, id: 0 }));
    await run(i, 2 * PING_PROBE_AFTER_MS);
    expect(kinds(i)).toEqual([RecordKind.VCHAN, RecordKind.PING]);
    i.link.deliver(ping(RecordKind.PONG, 1));
    await flush();
    await run(i, 5000);
    expect(i.session.isOpen).toBe(true);
    expect(kinds(i)).toEqual([RecordKind.VCHAN, RecordKind.PING]);
    i.session.close();
  });

  test("answering the peer's PINGs is not asking: no probe for our own PONGs", async () => {
    const r = side(false);
    r.link.deliver(ping(RecordKind.PING, 9));
    await flush();
    await run(r, 3000);
    expect(kinds(r)).toEqual([RecordKind.PONG]);
    expect(r.session.isOpen).toBe(true);
    r.session.close();
  });

  test("resumed after a pause (timers fire far too late): a fresh PING and a whole deadline, no verdict on the peer", async () => {
    const i = side(true);
    void i.session.ping().catch(() => {});
    await flush();
    // SIGSTOP for 40 s: longer than the ping deadline and the 30 s keepalive timeout.
    i.clock.resume(40_000);
    await flush();
    expect(i.session.isOpen).toBe(true);
    const pings = kinds(i).filter((k) => k === RecordKind.PING).length;
    expect(pings).toBeGreaterThanOrEqual(2); // the fresh one
    // Its answer (from the peer that was healthy all along) keeps the session.
    i.link.deliver(ping(RecordKind.PONG, pings));
    await flush();
    await run(i, 5000);
    expect(i.session.isOpen).toBe(true);
    i.session.close();
  });

  test("resumed after a pause and the peer really is gone: ended by the fresh PING's deadline", async () => {
    const i = side(true);
    void i.session.ping().catch(() => {});
    await flush();
    i.clock.resume(40_000);
    await flush();
    expect(i.session.isOpen).toBe(true);
    const resumedAt = i.clock.t;
    await run(i, 2 * PING_ANSWER_TIMEOUT_MS);
    expect((await i.session.closed)?.code).toBe("ping-unanswered");
    expect(i.clock.t - resumedAt).toBeLessThanOrEqual(PING_ANSWER_TIMEOUT_MS + PING_VERDICT_CONFIRM_MS + 20);
  });

  test("an answer read right after the deadline fired (reads queued behind timers) still counts", async () => {
    const i = side(true);
    void i.session.ping().catch(() => {});
    await flush();
    i.clock.advance(PING_ANSWER_TIMEOUT_MS); // the deadline fires: nothing yet, a second look is due
    expect(i.session.isOpen).toBe(true);
    i.link.deliver(ping(RecordKind.PONG, 1));
    await flush();
    await run(i, 200);
    expect(i.session.isOpen).toBe(true);
    i.session.close();
  });
});

describe("pairing confirmation", () => {
  test("vchan records are refused both ways until both users confirmed the code", async () => {
    const [i, r] = pair("pair-code");
    await expect(i.session.sendVchan(encodeVchan({ type: 3, id: 0 }))).rejects.toMatchObject({
      code: "unexpected-message",
    });
    await flush(); // the responder's PAIR_REVEAL opens the initiator's commitment
    await Promise.all([i.session.confirmPairing(true), r.session.confirmPairing(true)]);
    await i.session.sendVchan(encodeVchan({ type: 3, id: 0 }));
    await flush();
    expect(r.vchan).toEqual([encodeVchan({ type: 3, id: 0 })]);
    i.session.close();
  });

  test("a refused code closes the session and rejects with handshake-unknown-key", async () => {
    const [i] = pair("pair-code");
    await flush(); // the code is known once the responder's reveal opened the commitment
    await expect(i.session.confirmPairing(false)).rejects.toMatchObject({ code: "handshake-unknown-key" });
    expect(await i.session.closed).toBeNull();
    expect(i.link.kindsSent()).toEqual([RecordKind.CLOSE]);
  });

  test("confirmPairing outside pair-code mode is our bug (assert)", async () => {
    const i = side(true);
    await expect(i.session.confirmPairing(true)).rejects.toBeInstanceOf(AssertionError);
    i.session.close();
  });
});

describe("close", () => {
  test("close() sends one CLOSE record, ends with null, closes the link and rejects pending pings", async () => {
    const i = side(true);
    const pending = i.session.ping().catch((e: unknown) => e);
    i.session.close();
    expect(await i.session.closed).toBeNull();
    i.session.close(); // after the end: nothing more is sent
    expect(i.link.kindsSent()).toEqual([RecordKind.PING, RecordKind.CLOSE]);
    expect(i.link.sent.at(-1)).toEqual(Uint8Array.of(RecordKind.CLOSE, 0));
    expect(i.link.closed).toBe(true);
    expect(await pending).toMatchObject({ code: "link-lost" });
    await expect(i.session.ping()).rejects.toMatchObject({ code: "link-lost" });
  });

  test("a CLOSE from the peer ends the session with null, and the records after it are not read", async () => {
    const [i, r] = pair();
    i.session.close();
    expect(await r.session.closed).toBeNull();
    expect(r.link.closed).toBe(true);
    expect(r.session.isOpen).toBe(false);
  });

  test("EOF from the link ends the session with link-lost", async () => {
    const r = side(false);
    r.link.deliver(null);
    expect((await r.session.closed)?.code).toBe("link-lost");
  });
});

// --- Fixed cases on the scripted session of the fuzz test (test/helpers/session-script.ts) ---

describe("scripted session", () => {
  test("edge seeds: empty record, every kind byte alone and with a long body, a maximal record", async () => {
    const seeds: Uint8Array[] = [new Uint8Array(0)];
    for (let k = 0; k < 256; k++) seeds.push(Uint8Array.of(k), Uint8Array.of(k, ...new Uint8Array(9)));
    seeds.push(
      new Uint8Array(NOISE_MAX_PLAINTEXT).fill(RecordKind.REKEY),
      new Uint8Array(NOISE_MAX_PLAINTEXT),
    );
    for (const initiator of [true, false]) {
      for (const bytes of seeds) {
        const r = await runSession(initiator, "reconnect", [{ t: "record", bytes }], true);
        expectHealthy(r);
        if (!KNOWN_KINDS.includes(bytes[0] ?? -1)) expect(r.closed?.code).toBe("unexpected-message");
      }
    }
  });

  test("the simulated peer's rekeys are accepted (so the fuzz reaches the states after a rekey)", async () => {
    const responder = await runSession(
      false,
      "reconnect",
      [
        { t: "rekey-from-peer" },
        { t: "record", bytes: Uint8Array.of(RecordKind.REKEY_SWITCH) },
        { t: "ping" },
      ],
      true,
    );
    expectHealthy(responder);
    expect(responder.closed).toBeNull(); // ended by our close(), not by a fault
    const initiator = await runSession(
      true,
      "reconnect",
      [{ t: "rekey" }, { t: "rekey-answer" }, { t: "ping" }],
      true,
    );
    expectHealthy(initiator);
    expect(initiator.closed).toBeNull();
  });

  test("known faults end the session with their fixed codes", async () => {
    const cases: [boolean, HandshakeMode, Step[], string][] = [
      [false, "reconnect", [{ t: "record", bytes: Uint8Array.of(RecordKind.PING, 1) }], "frame-malformed"],
      [
        true,
        "reconnect",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.REKEY_SWITCH) }],
        "unexpected-message",
      ],
      [true, "reconnect", [{ t: "rekey-answer" }], "unexpected-message"],
      [false, "reconnect", [{ t: "rekey-from-peer" }, { t: "rekey-from-peer" }], "unexpected-message"],
      [false, "pair-code", [{ t: "record", bytes: encodeVchan({ type: 3, id: 1 }) }], "unexpected-message"],
      [false, "reconnect", [{ t: "record", bytes: encodeVchan({ type: 3, id: 1 }) }], "channel-unknown"],
      [
        false,
        "reconnect",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_CONFIRM) }],
        "unexpected-message",
      ],
      // pair-code: a confirmation before the reveal, a reveal that does not open the commitment,
      // a second reveal, and a reveal sent to the committing side.
      [
        true,
        "pair-code",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_CONFIRM) }],
        "unexpected-message",
      ],
      [
        true,
        "pair-code",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_REVEAL, ...new Uint8Array(32)) }],
        "pairing-commitment",
      ],
      [
        true,
        "pair-code",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_REVEAL, 1) }],
        "pairing-commitment",
      ],
      [true, "pair-code", [{ t: "reveal" }, { t: "reveal" }], "unexpected-message"],
      [false, "pair-code", [{ t: "reveal" }], "unexpected-message"],
    ];
    for (const [initiator, mode, steps, code] of cases) {
      const r = await runSession(initiator, mode, steps, true);
      expectHealthy(r);
      expect(r.closed?.code).toBe(code as ProtocolError["code"]);
    }
  });
});
