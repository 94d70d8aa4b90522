import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../../core/errors.ts";
import { LINK_SUITES, makeResolver } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { connectAsInitiator, connectAsResponder } from "../../core/session/establish.ts";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { type EvictReason, type HalfOpen, type HalfOpenLimits, HalfOpenTable } from "./half-open.ts";
import { HalfOpenLink } from "./half-open-link.ts";

/** A clock whose timers fire only when the test advances it. */
function fakeClock() {
  let now = 0;
  const timers = new Set<{ at: number; fn: () => void }>();
  return {
    setTimer(ms: number, fn: () => void) {
      const t = { at: now + ms, fn };
      timers.add(t);
      return () => void timers.delete(t);
    },
    advance(ms: number) {
      now += ms;
      for (const t of [...timers].sort((a, b) => a.at - b.at)) {
        if (t.at <= now && timers.delete(t)) t.fn();
      }
    },
    get pending() {
      return timers.size;
    },
  };
}

const LIMITS: HalfOpenLimits = { max: 8, perAddress: 2, offerTimeoutMs: 2000 };

/** A table that records every eviction as "name:reason". */
function setup(limits = LIMITS) {
  const clock = fakeClock();
  const table = new HalfOpenTable(limits, clock);
  const evicted: string[] = [];
  const slots = new Map<string, HalfOpen>();
  const admit = (name: string, address: string) => {
    let calls = 0;
    const slot = table.admit(address, (reason: EvictReason) => {
      calls++;
      expect(calls).toBe(1); // onEvict at most once per entry
      evicted.push(`${name}:${reason}`);
    });
    if (slot) slots.set(name, slot);
    return slot;
  };
  return { clock, table, evicted, slots, admit };
}

describe("half-open table", () => {
  test("per-address cap: a third connection from one address evicts that address's oldest", () => {
    const { table, evicted, admit } = setup();
    admit("a1", "10.0.0.1");
    admit("b1", "10.0.0.2");
    admit("a2", "10.0.0.1");
    expect(evicted).toEqual([]);
    admit("a3", "10.0.0.1");
    expect(evicted).toEqual(["a1:address-full"]);
    admit("a4", "10.0.0.1");
    expect(evicted).toEqual(["a1:address-full", "a2:address-full"]);
    expect(table.heldBy("10.0.0.1")).toBe(2);
    expect(table.heldBy("10.0.0.2")).toBe(1);
    expect(table.size).toBe(3);
  });

  test("table full: the oldest entry of the address holding the most goes; on a tie the oldest", () => {
    const { evicted, admit } = setup({ ...LIMITS, max: 4 });
    admit("x", "10.0.0.9");
    admit("a1", "10.0.0.1");
    admit("a2", "10.0.0.1");
    admit("b1", "10.0.0.2");
    admit("c1", "10.0.0.3"); // 10.0.0.1 holds two: its oldest goes, not the older x
    expect(evicted).toEqual(["a1:table-full"]);
    admit("d1", "10.0.0.4"); // now everyone holds one: the oldest overall (x)
    expect(evicted).toEqual(["a1:table-full", "x:table-full"]);
    admit("e1", "10.0.0.5");
    expect(evicted.at(-1)).toBe("a2:table-full");
  });

  test("a one-connection host survives any number of arrivals from up to max - 2 addresses", () => {
    // The attacker fills the table from max/2 addresses, then keeps connecting from max - 2
    // addresses (any order): some address always holds two, so the host is never evicted.
    const { evicted, admit } = setup();
    for (let i = 0; i < LIMITS.max; i++) admit(`fill${i}`, `10.0.1.${i % (LIMITS.max / 2)}`);
    admit("host", "10.0.0.1");
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      admit(`flood${i}`, `10.0.2.${seed % (LIMITS.max - 2)}`);
    }
    expect(evicted.some((e) => e.startsWith("host:"))).toBe(false);
  });

  test("with enough addresses the host goes only after max newer arrivals (the stated bound)", () => {
    const { evicted, admit } = setup();
    for (let i = 0; i < LIMITS.max; i++) admit(`fill${i}`, `10.0.1.${i}`);
    admit("host", "10.0.0.1");
    let arrivals = 0;
    while (!evicted.includes("host:table-full") && arrivals < 100)
      admit(`n${arrivals}`, `10.0.3.${arrivals++}`);
    expect(arrivals).toBe(LIMITS.max);
  });

  test("offer deadline: no offer in time is evicted; an offer or done stops the timer", () => {
    const { clock, table, evicted, admit } = setup();
    const idle = admit("idle", "10.0.0.1")!;
    const prompt = admit("prompt", "10.0.0.2")!;
    const quick = admit("quick", "10.0.0.3")!;
    clock.advance(1999);
    prompt.offered();
    quick.done();
    expect(evicted).toEqual([]);
    clock.advance(1);
    expect(evicted).toEqual(["idle:offer-timeout"]);
    expect(table.size).toBe(1); // prompt, still handshaking
    idle.done(); // after eviction: harmless
    clock.advance(60_000);
    expect(evicted).toEqual(["idle:offer-timeout"]);
    prompt.done();
    expect(table.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  test("an authenticated handshake is never evicted; a table full of them refuses", () => {
    const { table, evicted, admit } = setup({ ...LIMITS, max: 3 });
    const host = admit("host", "10.0.0.1")!;
    host.offered();
    host.authenticated();
    for (let i = 0; i < 300; i++) admit(`a${i}`, `10.0.${i % 5}.${i}`);
    for (let i = 0; i < 300; i++) admit(`b${i}`, "10.0.0.1"); // its own address too
    expect(evicted.some((e) => e.startsWith("host:"))).toBe(false);
    expect(table.size).toBe(3);
    const h2 = admit("h2", "10.0.9.1")!;
    const h3 = admit("h3", "10.0.9.2")!;
    h2.authenticated();
    h3.authenticated();
    expect(admit("late", "10.0.9.3")).toBeNull();
    expect(table.size).toBe(3);
    host.done();
    expect(admit("next", "10.0.9.3")).not.toBeNull();
  });

  test("random operations never exceed the limits or evict an authenticated entry", () => {
    const limits = { max: 6, perAddress: 2, offerTimeoutMs: 50 };
    const { clock, table, evicted, admit, slots } = setup(limits);
    const authenticated = new Set<string>();
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 5000; i++) {
      const op = rnd(10);
      const names = [...slots.keys()];
      const pick = names[rnd(Math.max(1, names.length))];
      if (op < 5) admit(`c${i}`, `10.0.0.${rnd(8)}`);
      else if (op === 5 && pick) slots.get(pick)!.offered();
      else if (op === 6 && pick && rnd(20) === 0) {
        slots.get(pick)!.authenticated();
        if (!evicted.some((e) => e.startsWith(`${pick}:`))) authenticated.add(pick);
      } else if (op === 7 && pick) {
        slots.get(pick)!.done();
        slots.delete(pick);
        authenticated.delete(pick);
      } else clock.advance(rnd(20));
      let over = table.size > limits.max;
      for (let a = 0; a < 8; a++) over ||= table.heldBy(`10.0.0.${a}`) > limits.perAddress;
      if (over) throw new Error(`a limit was exceeded at step ${i}`);
    }
    for (const name of authenticated) expect(evicted.some((e) => e.startsWith(`${name}:`))).toBe(false);
    expect(evicted.length).toBeGreaterThan(50);
  });
});

describe("half-open link", () => {
  const resolver = makeResolver();
  const hostKey = generateStaticKeyPair();
  const agentKey = generateStaticKeyPair();

  /** One IK handshake through a HalfOpenLink; the slot's events, and both ends' outcomes. */
  async function reconnect(pinned: boolean) {
    const [a, b] = duplexPair();
    const events: string[] = [];
    const link = new HalfOpenLink(new TcpRecordLink(b));
    link.attach({ offered: () => events.push("offered"), authenticated: () => events.push("authenticated") });
    const peers = { isPinned: () => pinned, acceptTimestamp: () => true };
    const tuning = { clock: systemClock, onOpen: () => {} };
    const outcome = await Promise.allSettled([
      connectAsInitiator(
        {
          link: new TcpRecordLink(a),
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
    for (const o of outcome) if (o.status === "fulfilled") o.value.session.close();
    return { events, outcome: outcome.map((o) => o.status) };
  }

  test("reports the offer and the pinned key to its slot", async () => {
    expect(await reconnect(true)).toEqual({
      events: ["offered", "authenticated"],
      outcome: ["fulfilled", "fulfilled"],
    });
  });

  test("an unpinned key is never reported as authenticated", async () => {
    expect(await reconnect(false)).toEqual({ events: ["offered"], outcome: ["rejected", "rejected"] });
  });

  test("a killed link fails its pending read with a fixed code and closes", async () => {
    const [a, b] = duplexPair();
    const link = new HalfOpenLink(new TcpRecordLink(b));
    const pending = link.recvHandshake();
    link.kill("table-full");
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe("handshake-rate");
    expect(await a.read()).toBeNull(); // the connection is closed
    const late = new HalfOpenLink(new TcpRecordLink(duplexPair()[1]));
    late.kill("offer-timeout");
    expect(((await late.recvHandshake().catch((e) => e)) as ProtocolError).code).toBe("handshake-timeout");
  });
});
