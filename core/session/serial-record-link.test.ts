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
import { encodeSerialFrame, SerialFrameType } from "../wire/serial-frame.ts";
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
  test("handshake: the responder adopts the first attempt id, then skips other attempts and transport frames", async () => {
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
    expect(await link.recvHandshake()).toEqual(r(3));
    await expect(link.recvHandshake()).rejects.toMatchObject({ code: "link-lost" });
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
