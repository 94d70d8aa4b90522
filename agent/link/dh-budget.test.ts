/**
 * The global handshake limits (dh-budget.ts, refusal-log.ts, the known-address order of
 * half-open.ts, and HalfOpenLink paying before DH work): unit tests with a fake clock. The real
 * agent under a flood from many addresses is test/integration/agent-flood.test.ts.
 */
import { describe, expect, test } from "bun:test";
import type { ProtocolError } from "../../core/errors.ts";
import { LINK_SUITES, makeResolver } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { connectAsInitiator, connectAsResponder } from "../../core/session/establish.ts";
import { RESPONDER_DH_OPS } from "../../core/session/handshake.ts";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { DhBudget, KnownAddresses } from "./dh-budget.ts";
import { HalfOpenTable } from "./half-open.ts";
import { HalfOpenLink } from "./half-open-link.ts";
import { RefusalLog } from "./refusal-log.ts";

const LIMITS = { perSecond: 100, burst: 10, reservedPerSecond: 5, reservedBurst: 4 };

function budget(limits = LIMITS) {
  let now = 0;
  const known = new KnownAddresses(3);
  const b = new DhBudget(known, () => now, limits);
  return { b, known, advance: (ms: number) => (now += ms) };
}

describe("DH budget", () => {
  test("holds for all addresses together: a new address per attempt gets no more", () => {
    const { b, advance } = budget();
    let paid = 0;
    for (let i = 0; i < 1000; i++) if (b.spend(`10.0.${i >> 8}.${i & 255}`, 2)) paid += 2;
    expect(paid).toBe(10); // the burst, nothing more
    advance(1000);
    for (let i = 0; i < 1000; i++) if (b.spend(`10.1.${i >> 8}.${i & 255}`, 2)) paid += 2;
    expect(paid).toBe(20); // one second refills at most `burst` (100/s, capped at 10)
    expect(b.drain()).toEqual({ spent: 20, refused: 2 * 2000 - 20 });
    expect(b.drain()).toEqual({ spent: 0, refused: 0 });
  });

  test("a known host's address draws on the reserved bucket, which strangers cannot empty", () => {
    const { b, known } = budget();
    known.add("192.0.2.1");
    for (let i = 0; i < 100; i++) b.spend(`198.51.100.${i}`, 2); // the general bucket is empty
    expect(b.spend("198.51.100.200", 2)).toBe(false);
    expect(b.spend("192.0.2.1", 2)).toBe(true);
    expect(b.spend("192.0.2.1", 2)).toBe(true);
    expect(b.spend("192.0.2.1", 2)).toBe(false); // reserved burst 4 spent
  });

  test("known addresses are bounded, most recent kept; only new ones are reported (to be saved)", () => {
    const saved: string[] = [];
    const known = new KnownAddresses(3, ["z"], (a) => saved.push(a));
    expect(known.has("z")).toBe(true);
    for (const a of ["a", "b", "c", "a", "d"]) known.add(a);
    expect(known.size).toBe(3);
    expect(["a", "b", "c", "d", "z"].map((x) => known.has(x))).toEqual([true, false, true, true, false]);
    expect(saved).toEqual(["a", "b", "c", "d"]);
  });
});

describe("half-open table with known host addresses", () => {
  test("a full table evicts strangers first, even when each holds one entry", () => {
    const known = new Set(["10.9.9.9"]);
    const table = new HalfOpenTable({ max: 4, perAddress: 2, offerTimeoutMs: 2000 }, systemClock, (a) =>
      known.has(a),
    );
    const evicted: string[] = [];
    const host = table.admit("10.9.9.9", () => evicted.push("host"));
    for (let i = 0; i < 500; i++) {
      const s = table.admit(`10.0.${i >> 8}.${i & 255}`, () => evicted.push(`s${i}`));
      expect(s).not.toBeNull();
    }
    expect(evicted).not.toContain("host");
    expect(table.size).toBe(4);
    host?.done();
    for (let i = 0; i < 4; i++) table.admit(`10.1.0.${i}`, () => {})?.done();
  });
});

describe("refusal log", () => {
  function fakeTimers() {
    const pending: (() => void)[] = [];
    return {
      setTimer: (_ms: number, fn: () => void) => {
        pending.push(fn);
        return () => {
          const i = pending.indexOf(fn);
          if (i >= 0) pending.splice(i, 1);
        };
      },
      fire: () => {
        for (const fn of pending.splice(0)) fn();
      },
    };
  }

  test("the first few of a window get a line each; the rest are counted in one summary", () => {
    const lines: string[] = [];
    const timers = fakeTimers();
    const { b } = budget();
    const log = new RefusalLog((event, fields) => lines.push(`${event} ${JSON.stringify(fields)}`), {
      clock: timers,
      budget: b,
      logged: 3,
    });
    b.spend("x", 2);
    for (let i = 0; i < 1000; i++)
      log.refused({ via: `tcp 10.0.0.${i & 255}:1`, code: i % 2 ? "handshake-rate" : "handshake-decrypt" });
    expect(lines).toHaveLength(3);
    timers.fire();
    expect(lines).toHaveLength(4);
    const summary = JSON.parse(lines[3]!.slice("refused-summary ".length));
    expect(summary).toMatchObject({
      refused: 1000,
      unlogged: 997,
      "handshake-rate": 499,
      "handshake-decrypt": 498,
      dhSpent: 2,
    });
    // A quiet window writes nothing; the next one logs its first few again.
    timers.fire();
    log.refused({ via: "tcp 10.0.0.1:1", code: "handshake-replay" });
    expect(lines).toHaveLength(5);
    timers.fire();
    expect(lines).toHaveLength(5); // nothing unlogged: no summary
  });
});

describe("half-open link pays for DH work", () => {
  const resolver = makeResolver();
  const hostKey = generateStaticKeyPair();
  const agentKey = generateStaticKeyPair();

  /**
   * A reconnect through a HalfOpenLink. `relay`: the host's messages reach the agent from
   * another connection (an on-path attacker's address) whose peer never gets message 2 and so
   * never holds the session keys.
   */
  async function reconnect(spend: (ops: number) => boolean, pinned = true, relay = false) {
    const [a, b] = duplexPair();
    const asked: number[] = [];
    const reconnected: string[] = [];
    const link = new HalfOpenLink(new TcpRecordLink(b), {
      spend: (ops) => {
        asked.push(ops);
        return spend(ops);
      },
      hostConnected: () => reconnected.push("yes"),
    });
    const tuning = { clock: systemClock, onOpen: () => {} };
    const peers = { isPinned: () => pinned, acceptTimestamp: () => true };
    const hostLink = new TcpRecordLink(a);
    if (relay) {
      // The offer and message 1 go out; what the agent answers after message 1 never comes back.
      let sent = 0;
      const send = hostLink.sendHandshake.bind(hostLink);
      const recv = hostLink.recvHandshake.bind(hostLink);
      hostLink.sendHandshake = async (m) => {
        await send(m);
        sent++;
      };
      hostLink.recvHandshake = async () => {
        const m = await recv();
        if (sent >= 2) throw new Error("message 2 dropped by the relay");
        return m;
      };
    }
    const outcome = await Promise.allSettled([
      connectAsInitiator(
        {
          link: hostLink,
          resolver,
          staticKey: hostKey,
          version: "h",
          suites: [...LINK_SUITES],
          mode: "reconnect",
          responderKey: agentKey.publicKey,
          timestamp: () => 1n,
        },
        tuning,
      ),
      connectAsResponder(
        { link, resolver, staticKey: agentKey, version: "a", suites: [...LINK_SUITES], peers, pairing: {} },
        tuning,
      ),
    ]);
    // The host proves it holds the keys with a transport record (a ping, answered).
    if (outcome[0].status === "fulfilled" && outcome[1].status === "fulfilled")
      await outcome[0].value.session.ping();
    for (const o of outcome) if (o.status === "fulfilled") o.value.session.close();
    const device = outcome[1];
    return {
      asked,
      reconnected,
      code: device.status === "rejected" ? (device.reason as ProtocolError).code : null,
    };
  }

  test("IK message 1 is paid before it is read; a pinned host's completed reconnect marks its address", async () => {
    expect(await reconnect(() => true)).toEqual({
      asked: [RESPONDER_DH_OPS.ik],
      reconnected: ["yes"],
      code: null,
    });
  });

  test("no budget: refused with handshake-rate, nothing read", async () => {
    const r = await reconnect(() => false);
    expect(r).toEqual({ asked: [RESPONDER_DH_OPS.ik], reconnected: [], code: "handshake-rate" });
  });

  test("a real IK message 1 relayed from another address does not mark that address: its peer sends no record", async () => {
    const r = await reconnect(() => true, true, true);
    expect(r).toEqual({ asked: [RESPONDER_DH_OPS.ik], reconnected: [], code: null });
  });

  test("an unpinned key never marks its address", async () => {
    const r = await reconnect(() => true, false);
    expect(r).toEqual({ asked: [RESPONDER_DH_OPS.ik], reconnected: [], code: "handshake-unknown-key" });
  });
});
