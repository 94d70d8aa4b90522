/**
 * Serial robustness at the record layer: garbage around frames, a replayed frame, a flipped bit,
 * a dropped frame. Corrupted data must never be delivered; the link either carries on intact or
 * ends with link-lost (after which the host reconnects: test/integration covers that part).
 * Then the link on its own: attempt ids, carry-over after a peer restart, stale epochs, replays,
 * gaps and forged frames. Random bytes are in test/fuzz/session.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { drainRecords, keyedCipher } from "../../test/helpers/session-script.ts";
import { LINK_SUITES, makeResolver } from "../noise/suites.ts";
import type { Channel } from "../vchan/channel.ts";
import {
  KEEPALIVE_TIMEOUT_MS,
  SERIAL_HANDSHAKE_TIMEOUT_MS,
  SERIAL_KEEPALIVE_INTERVAL_MS,
  SERIAL_KEEPALIVE_TIMEOUT_MS,
} from "../wire/limits.ts";
import { encodeSerialFrame, SerialFrameReader, SerialFrameType } from "../wire/serial-frame.ts";
import { systemClock } from "./duplex.ts";
import { connectAsInitiator, connectAsResponder } from "./establish.ts";
import { generateStaticKeyPair } from "./key-text.ts";
import { SerialRecordLink } from "./serial-record-link.ts";

const resolver = makeResolver();
const hostKey = generateStaticKeyPair();
const agentKey = generateStaticKeyPair();

type Tap = (chunk: Uint8Array, index: number) => Uint8Array[];

/** Connects over serial framing; `tap` rewrites what the host writes once the session is up. */
async function transfer(tap: Tap, size = 400_000) {
  const [a, b] = duplexPair();
  const agentLink = new SerialRecordLink(b);
  let received: Promise<Uint8Array> = Promise.resolve(new Uint8Array(0));
  const [host, agent] = await Promise.all([
    connectAsInitiator(
      {
        link: new SerialRecordLink(a, 1n),
        resolver,
        staticKey: hostKey,
        version: "h",
        suites: [...LINK_SUITES],
        mode: "reconnect",
        responderKey: agentKey.publicKey,
        timestamp: () => 1n,
      },
      { clock: systemClock, onOpen: () => {} },
    ),
    connectAsResponder(
      {
        link: agentLink,
        resolver,
        staticKey: agentKey,
        version: "a",
        suites: [...LINK_SUITES],
        peers: { isPinned: () => true, acceptTimestamp: () => true },
        pairing: {},
      },
      {
        clock: systemClock,
        onOpen: (ch) => {
          received = (async () => {
            const parts: Uint8Array[] = [];
            try {
              for (let c = await ch.read(); c; c = await ch.read()) parts.push(c);
            } catch {
              // the session ended: what arrived so far is what we check
            }
            return Buffer.concat(parts);
          })();
        },
      },
    ),
  ]);
  let index = 0;
  a.tap = (chunk) => {
    for (const piece of tap(chunk, index++)) a.peer.deliver(piece);
    return null;
  };
  const data = Uint8Array.from({ length: size }, (_, i) => (i * 131) ^ (i >> 9));
  const ch = host.vchan.open(new Uint8Array(0));
  const sent = (async () => {
    try {
      await ch.write(data);
      await ch.closeWrite();
    } catch {
      // the session may end under us in the fault cases
    }
  })();
  await sent;
  const got = await received;
  const agentEnd = await Promise.race([agent.session.closed, Bun.sleep(0).then(() => "open" as const)]);
  host.session.close();
  return { data, got, agentEnd, stats: agentLink.stats };
}

const garbage = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * seed + 7) & 0xff);

describe("serial record link", () => {
  test("garbage before and between frames is discarded and the data arrives intact", async () => {
    const r = await transfer((chunk, i) => [garbage(3 + (i % 50), 13), chunk, garbage(i % 7, 29)]);
    expect(Buffer.from(r.got).equals(Buffer.from(r.data))).toBe(true);
    expect(r.stats.bytesDiscarded).toBeGreaterThan(0);
  });

  test("a replayed frame is refused and changes nothing", async () => {
    const r = await transfer((chunk, i) => (i === 3 || i === 5 ? [chunk, chunk] : [chunk]));
    expect(Buffer.from(r.got).equals(Buffer.from(r.data))).toBe(true);
    expect(r.stats.replaysRefused).toBe(2);
  });

  for (const [name, fault] of [
    ["a flipped bit", (c: Uint8Array) => [c.map((b, j) => (j === c.length >> 1 ? b ^ 0x10 : b))]],
    ["a dropped frame", () => []],
  ] as const) {
    test(`${name} is never delivered: the stream stops at a clean prefix and the session ends`, async () => {
      const r = await transfer((chunk, i) => (i === 4 ? fault(chunk) : [chunk]));
      expect(r.got.length).toBeLessThan(r.data.length);
      expect(Buffer.from(r.got).equals(Buffer.from(r.data.subarray(0, r.got.length)))).toBe(true);
      expect(r.agentEnd).toMatchObject({ code: "link-lost" });
    });
  }
});

// --- The link on its own: frames written by hand or by a sending link, read by a receiving one ---

const handshakeFrame = (counter: bigint, body: number[]) =>
  encodeSerialFrame({ type: SerialFrameType.HANDSHAKE, epoch: 0, counter, body: Uint8Array.from(body) });

/** The frames a sending link writes for `records` under keyedCipher(fill), after `switches` key switches. */
async function sealed(
  records: Uint8Array[],
  o: { fill?: number; switches?: number } = {},
): Promise<Uint8Array[]> {
  const [tx] = duplexPair();
  const frames: Uint8Array[] = [];
  tx.tap = (chunk) => {
    frames.push(chunk);
    return null;
  };
  const link = new SerialRecordLink(tx, 1n);
  for (let i = 0; i <= (o.switches ?? 0); i++) link.setSendKey(keyedCipher(o.fill ?? 5));
  for (const r of records) await link.send(r);
  return frames;
}

/** A receiving link (one key switch, like a fresh session) reading `frames` then EOF. */
async function receiving(frames: Uint8Array[], switches = 0): Promise<SerialRecordLink> {
  const [a, b] = duplexPair();
  const link = new SerialRecordLink(b);
  for (let i = 0; i <= switches; i++) link.setRecvKey(keyedCipher(5));
  for (const f of frames) await a.write(f);
  a.close();
  return link;
}

const r = (...bytes: number[]) => Uint8Array.from(bytes);

describe("serial record link on its own", () => {
  test("handshake: the responder adopts the first attempt id and skips transport frames; a newer attempt ends this one and is carried over", async () => {
    const [a, b] = duplexPair();
    const link = new SerialRecordLink(b);
    for (const f of [
      handshakeFrame(5n, [1]),
      ...(await sealed([r(9)])),
      handshakeFrame(6n, [2]),
      handshakeFrame(5n, [3]),
    ])
      await a.write(f);
    a.close();
    expect(await link.recvHandshake()).toEqual(r(1));
    // Frames stay in order on a line: attempt 6 means the initiator gave up on attempt 5.
    await expect(link.recvHandshake()).rejects.toMatchObject({ code: "link-lost" });
    expect(link.carryOver().map((f) => [f.counter, [...f.body]])).toEqual([[6n, [2]]]);
  });

  test("a responder without a session answers stray transport frames with one 'no session here' RESET (rate-limited)", async () => {
    const [a, b] = duplexPair();
    const link = new SerialRecordLink(b);
    const written: Uint8Array[] = [];
    b.tap = (chunk) => {
      written.push(chunk);
      return null;
    };
    // A restarted agent reads what the host still sends for the session it no longer has.
    for (const f of await sealed([r(1), r(2), r(3)])) await a.write(f);
    await a.write(handshakeFrame(5n, [1]));
    expect(await link.recvHandshake()).toEqual(r(1));
    const reader = new SerialFrameReader();
    for (const c of written) reader.push(c);
    const frames = [...reader.drain()];
    expect(frames.map((f) => [f.type, f.counter, [...f.body]])).toEqual([[SerialFrameType.RESET, 0n, [1]]]);
  });

  test("a handshake frame during the session ends it with link-lost, and carryOver hands it on", async () => {
    const link = await receiving([...(await sealed([r(1)])), handshakeFrame(8n, [4])]);
    expect(await drainRecords(() => link.recv())).toEqual({ records: [r(1)], end: "link-lost" });
    const next = link.carryOver();
    expect(next.map((f) => [f.counter, [...f.body]])).toEqual([[8n, [4]]]);
    const [, b] = duplexPair();
    expect(await new SerialRecordLink(b, undefined, next).recvHandshake()).toEqual(r(4));
  });

  test("frames of the epoch before a key switch are skipped as stale", async () => {
    const old = await sealed([r(1)]);
    const current = await sealed([r(2)], { switches: 1 });
    const link = await receiving([...old, ...current], 1);
    expect(await drainRecords(() => link.recv())).toEqual({ records: [r(2)], end: "eof" });
  });

  test("a replayed frame is refused and counted; a gap in the counters is link-lost", async () => {
    const [f0, f1, f2] = await sealed([r(0), r(1), r(2)]);
    const replayed = await receiving([f0!, f0!, f1!]);
    expect(await drainRecords(() => replayed.recv())).toEqual({ records: [r(0), r(1)], end: "eof" });
    expect(replayed.stats.replaysRefused).toBe(1);
    const gap = await receiving([f0!, f2!]);
    expect(await drainRecords(() => gap.recv())).toEqual({ records: [r(0)], end: "link-lost" });
  });

  test("forged frames (good CRC, bad AEAD) never move the window; the ninth ends with decrypt", async () => {
    const forged = (counter: bigint) =>
      encodeSerialFrame({ type: SerialFrameType.TRANSPORT, epoch: 1, counter, body: new Uint8Array(20) });
    const [f0] = await sealed([r(7)]);
    const some = await receiving([forged(0n), forged(1n), forged(5n), f0!]);
    expect(await drainRecords(() => some.recv())).toEqual({ records: [r(7)], end: "eof" });
    expect(some.stats.authFailures).toBe(3);
    const many = await receiving(Array.from({ length: 9 }, (_, i) => forged(BigInt(i))));
    expect(await drainRecords(() => many.recv())).toEqual({ records: [], end: "decrypt" });
  });
});
/** A host and an agent session over serial framing on a duplex pair; the host's attempt id is 7. */
async function pair(
  beforeHandshake?: (toAgent: (bytes: Uint8Array) => void) => void,
  taps: { host?: (c: Uint8Array) => Uint8Array | null; agent?: (c: Uint8Array) => Uint8Array | null } = {},
) {
  const [a, b] = duplexPair();
  beforeHandshake?.((bytes) => a.peer.deliver(bytes));
  a.tap = taps.host ?? null;
  b.tap = taps.agent ?? null;
  const opened: Channel[] = [];
  const [host, agent] = await Promise.all([
    connectAsInitiator(
      {
        link: new SerialRecordLink(a, ATTEMPT),
        resolver,
        staticKey: hostKey,
        version: "h",
        suites: [...LINK_SUITES],
        mode: "reconnect",
        responderKey: agentKey.publicKey,
        timestamp: () => 1n,
      },
      { clock: systemClock, onOpen: () => {} },
    ),
    connectAsResponder(
      {
        link: new SerialRecordLink(b),
        resolver,
        staticKey: agentKey,
        version: "a",
        suites: [...LINK_SUITES],
        peers: { isPinned: () => true, acceptTimestamp: () => true },
        pairing: {},
      },
      { clock: systemClock, onOpen: (ch) => opened.push(ch) },
    ),
  ]);
  return { a, b, host, agent, opened };
}

const ATTEMPT = 7n;
const noSession = () =>
  encodeSerialFrame(
    { type: SerialFrameType.RESET, epoch: 0, counter: 0n, body: Uint8Array.of(1) },
    { leadingDelimiter: true },
  );

test("'no session here' from the responder (it restarted) ends the initiator's session at once; the responder ignores one", async () => {
  const { a, b, host, agent } = await pair();
  b.deliver(noSession()); // to the agent: only an initiator honours it
  expect(await host.session.ping()).toBeGreaterThanOrEqual(0);
  expect(agent.session.isOpen).toBe(true);
  a.deliver(noSession()); // to the host
  expect(await host.session.closed).toMatchObject({ code: "link-reset" });
});

const reset = (counter: bigint) =>
  encodeSerialFrame(
    { type: SerialFrameType.RESET, epoch: 0, counter, body: Uint8Array.of(0) },
    { leadingDelimiter: true },
  );

describe("serial RESET: the cleartext session-over notice", () => {
  test("the side that sees a lost frame ends with link-lost and the other side hears link-reset", async () => {
    const { a, host, agent } = await pair();
    let n = 0;
    a.tap = (chunk) => (n++ === 0 ? null : chunk); // the host's next frame is lost
    // The ping is lost; the gap is seen on the next frame (the keepalive PING, within 500 ms),
    // and the agent's RESET ends the host's session, which also settles this ping.
    await host.session.ping().catch(() => {});
    expect(await agent.session.closed).toMatchObject({ code: "link-lost" });
    expect(await host.session.closed).toMatchObject({ code: "link-reset" });
  });

  test("a forged RESET naming another attempt is ignored; the session carries on", async () => {
    const { a, host, agent } = await pair();
    a.peer.deliver(reset(ATTEMPT + 1n));
    a.peer.deliver(reset(0n));
    expect(await host.session.ping()).toBeGreaterThanOrEqual(0); // the agent answered after them
    expect(agent.session.isOpen).toBe(true);
    host.session.close();
  });

  test("a RESET naming the session only ends it (link-reset): nothing is delivered after it", async () => {
    const { a, host, agent, opened } = await pair();
    a.peer.deliver(reset(ATTEMPT));
    expect(await agent.session.closed).toMatchObject({ code: "link-reset" });
    const ch = host.vchan.open(new Uint8Array(0));
    await ch.write(new Uint8Array([1, 2, 3])).catch(() => {});
    expect(opened).toHaveLength(0);
    host.session.close();
  });

  test("a RESET before or during the handshake is ignored (it names no session of ours)", async () => {
    const { host, agent } = await pair((toAgent) => toAgent(reset(ATTEMPT)));
    expect(await host.session.ping()).toBeGreaterThanOrEqual(0);
    expect(agent.session.isOpen).toBe(true);
    host.session.close();
  });

  test("the serial link asks for the serial keepalive and handshake limits", () => {
    const link = new SerialRecordLink(duplexPair()[0], 1n);
    expect(link.timing).toEqual({
      keepaliveIntervalMs: SERIAL_KEEPALIVE_INTERVAL_MS,
      keepaliveTimeoutMs: SERIAL_KEEPALIVE_TIMEOUT_MS,
      handshakeTimeoutMs: SERIAL_HANDSHAKE_TIMEOUT_MS,
    });
  });
});

describe("serial handshake: a lost frame is repeated, not a lost attempt", () => {
  for (const [who, index] of [
    ["the host's offer", ["host", 0]],
    ["the device's choice", ["agent", 0]],
    ["the host's IK message", ["host", 1]],
    ["the device's IK answer", ["agent", 1]],
  ] as const) {
    test(`${who} is lost: the same attempt completes after a repeat, well within the deadline`, async () => {
      const [side, lose] = index;
      let n = 0;
      const drop = (c: Uint8Array) => (n++ === lose ? null : c);
      const t = performance.now();
      const { host, agent, a, b } = await pair(undefined, side === "host" ? { host: drop } : { agent: drop });
      a.tap = null;
      b.tap = null;
      expect(performance.now() - t).toBeLessThan(SERIAL_HANDSHAKE_TIMEOUT_MS);
      expect(await host.session.ping()).toBeGreaterThanOrEqual(0);
      expect(agent.session.isOpen).toBe(true);
      host.session.close();
    });
  }

  test("repeats arriving after the session is up change nothing (and never reach Noise twice)", async () => {
    const frames: Uint8Array[] = [];
    const record = (c: Uint8Array) => {
      frames.push(c.slice());
      return c;
    };
    const { host, agent, a } = await pair(undefined, { host: record });
    a.tap = null;
    for (const f of frames) a.peer.deliver(f); // every handshake frame of this attempt, again
    expect(await host.session.ping()).toBeGreaterThanOrEqual(0);
    expect(agent.session.isOpen).toBe(true);
    expect(host.session.isOpen).toBe(true);
    host.session.close();
  });
});

test("a responder mid-handshake that sees a newer attempt gives up at once and carries it over", async () => {
  const [a, b] = duplexPair();
  const link = new SerialRecordLink(b);
  const frame = (counter: bigint, body: number) =>
    encodeSerialFrame(
      { type: SerialFrameType.HANDSHAKE, epoch: 0, counter, body: Uint8Array.of(body) },
      { leadingDelimiter: true },
    );
  a.peer.deliver(frame(1n, 1));
  expect(await link.recvHandshake()).toEqual(Uint8Array.of(1));
  a.peer.deliver(frame(2n, 2));
  const e = await link.recvHandshake().catch((x) => x);
  expect(e).toMatchObject({ code: "link-lost" });
  expect(link.carryOver().map((f) => f.counter)).toEqual([2n]);
});

test("line bytes keep a quiet serial session alive, but without records never past the TCP dead-peer time", async () => {
  // A clock the test drives: the keepalive is judged on ticks, so time is exact here.
  let t = 0;
  let timers: { at: number; fn: () => void }[] = [];
  const clock = {
    now: () => t,
    setTimer(ms: number, fn: () => void) {
      const timer = { at: t + ms, fn };
      timers.push(timer);
      return () => {
        timers = timers.filter((x) => x !== timer);
      };
    },
  };
  const [a, b] = duplexPair();
  const [host, agent] = await Promise.all([
    connectAsInitiator(
      {
        link: new SerialRecordLink(a, ATTEMPT),
        resolver,
        staticKey: hostKey,
        version: "h",
        suites: [...LINK_SUITES],
        mode: "reconnect",
        responderKey: agentKey.publicKey,
        timestamp: () => 1n,
      },
      { clock, onOpen: () => {} },
    ),
    connectAsResponder(
      {
        link: new SerialRecordLink(b),
        resolver,
        staticKey: agentKey,
        version: "a",
        suites: [...LINK_SUITES],
        peers: { isPinned: () => true, acceptTimestamp: () => true },
        pairing: {},
      },
      { clock, onOpen: () => {} },
    ),
  ]);
  a.tap = () => null; // nothing the host sends arrives any more; only noise does
  const step = async (ms: number) => {
    t += ms;
    for (const due of timers.filter((x) => x.at <= t)) {
      timers = timers.filter((x) => x !== due);
      due.fn();
    }
    a.peer.deliver(Uint8Array.of(0x41, 0x42, 0x43)); // line noise, never a frame
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  for (let i = 0; i < 40; i++) await step(250); // 10 s: far past the 1.5 s serial timeout
  expect(agent.session.isOpen).toBe(true);
  for (let i = 0; i < 100 && agent.session.isOpen; i++) await step(250);
  expect(await agent.session.closed).toMatchObject({ code: "keepalive-timeout" });
  expect(t).toBeGreaterThanOrEqual(KEEPALIVE_TIMEOUT_MS);
  expect(t).toBeLessThan(KEEPALIVE_TIMEOUT_MS + 2000);
  host.session.close();
});
