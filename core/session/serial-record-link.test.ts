/**
 * Serial robustness at the record layer: garbage around frames, a replayed frame, a flipped bit,
 * a dropped frame. Corrupted data must never be delivered; the link either carries on intact or
 * ends with link-lost (after which the host reconnects: test/integration covers that part).
 */
import { describe, expect, test } from "bun:test";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { LINK_SUITES, makeResolver } from "../noise/suites.ts";
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
