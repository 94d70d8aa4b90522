/**
 * Unit tests of TcpRecordLink (tcp-record-link.ts): handshake frames in the clear, records
 * sealed with implicit nonces, the fixed codes for bad lengths, and EOF; and what a session on it
 * does when a flipped length field desynchronises the stream. Random bytes are in
 * test/fuzz/session.fuzz.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { drainRecords, keyedCipher } from "../../test/helpers/session-script.ts";
import { AssertionError, ProtocolError } from "../errors.ts";
import { LINK_SUITES, makeResolver } from "../noise/suites.ts";
import { encodeVchan, VchanType } from "../vchan/messages.ts";
import {
  KEEPALIVE_TIMEOUT_MS,
  NOISE_MAX_MESSAGE,
  NOISE_MAX_PLAINTEXT,
  PING_ANSWER_TIMEOUT_MS,
} from "../wire/limits.ts";
import { systemClock } from "./duplex.ts";
import { connectAsInitiator, connectAsResponder } from "./establish.ts";
import { generateStaticKeyPair } from "./key-text.ts";
import { TcpRecordLink } from "./tcp-record-link.ts";

/** A link reading `wire` then EOF, with a receive key that matches keyedCipher(5). */
async function reading(wire: Uint8Array): Promise<TcpRecordLink> {
  const [a, b] = duplexPair();
  const link = new TcpRecordLink(b);
  link.setRecvKey(keyedCipher(5));
  await a.write(wire);
  a.close();
  return link;
}

describe("TcpRecordLink", () => {
  test("handshake messages go in the clear as u16-length frames; EOF in a handshake is link-lost", async () => {
    const [a, b] = duplexPair();
    const [x, y] = [new TcpRecordLink(a), new TcpRecordLink(b)];
    await x.sendHandshake(Uint8Array.of(1, 2, 3));
    a.close();
    expect(await y.recvHandshake()).toEqual(Uint8Array.of(1, 2, 3));
    await expect(y.recvHandshake()).rejects.toMatchObject({ code: "link-lost" });
  });

  test("records are sealed in order, counted per key, and null at EOF", async () => {
    const [a, b] = duplexPair();
    const [x, y] = [new TcpRecordLink(a), new TcpRecordLink(b)];
    x.setSendKey(keyedCipher(5));
    y.setRecvKey(keyedCipher(5));
    const seen: Uint8Array[] = [];
    a.tap = (chunk) => {
      seen.push(chunk);
      return chunk;
    };
    await x.send(Uint8Array.of(9, 9));
    await x.send(new Uint8Array(NOISE_MAX_PLAINTEXT));
    a.close();
    expect(seen[0]!.length).toBe(2 + 2 + 16); // length prefix, record, tag
    expect(seen[1]!.length).toBe(2 + NOISE_MAX_MESSAGE);
    const out = await drainRecords(() => y.recv());
    expect(out.records).toEqual([Uint8Array.of(9, 9), new Uint8Array(NOISE_MAX_PLAINTEXT)]);
    expect(out.end).toBe("eof");
    expect([x.recordsSinceKey, y.recordsSinceKey]).toEqual([2, 2]);
    x.setSendKey(keyedCipher(5));
    expect(x.recordsSinceKey).toBe(0);
  });

  test("our misuse asserts: a handshake message after keys, a record before keys or over the limit", async () => {
    const [a] = duplexPair();
    const link = new TcpRecordLink(a);
    await expect(link.send(Uint8Array.of(1))).rejects.toBeInstanceOf(AssertionError);
    link.setSendKey(keyedCipher(5));
    await expect(link.send(new Uint8Array(NOISE_MAX_PLAINTEXT + 1))).rejects.toBeInstanceOf(AssertionError);
    await expect(link.sendHandshake(Uint8Array.of(1))).rejects.toBeInstanceOf(AssertionError);
  });

  test("length edge seeds: 0, 1, the limit and a truncated body", async () => {
    const cases: [Uint8Array, string][] = [
      [Uint8Array.of(0, 0), "frame-malformed"],
      [Uint8Array.of(0, 1, 7), "decrypt"],
      [Uint8Array.of(0xff, 0xff, ...new Uint8Array(NOISE_MAX_MESSAGE)), "decrypt"],
      [Uint8Array.of(0x00, 0x10, 1, 2), "frame-truncated"],
      [Uint8Array.of(0x01), "frame-truncated"],
    ];
    for (const [wire, code] of cases) {
      const link = await reading(wire);
      expect(await drainRecords(() => link.recv())).toEqual({ records: [], end: code });
    }
    const [a, b] = duplexPair();
    await a.write(Uint8Array.of(0x05, 0x00, ...new Uint8Array(0x500)));
    a.close();
    expect(await drainRecords(() => new TcpRecordLink(b).recvHandshake())).toEqual({
      records: [],
      end: "handshake-malformed",
    });
  });
});

describe("a flipped length field (TCP framing desynchronised in transit)", () => {
  const resolver = makeResolver();
  const hostKey = generateStaticKeyPair();
  const agentKey = generateStaticKeyPair();

  test("the asking side ends with ping-unanswered in about PING_PROBE_AFTER_MS + PING_ANSWER_TIMEOUT_MS, not the 30 s keepalive (shipped defaults)", async () => {
    const [a, b] = duplexPair();
    const [host, agent] = await Promise.all([
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
        { clock: systemClock, onOpen: () => {} },
      ),
      connectAsResponder(
        {
          link: new TcpRecordLink(b),
          resolver,
          staticKey: agentKey,
          version: "a",
          suites: [...LINK_SUITES],
          peers: { isPinned: () => true, acceptTimestamp: () => true },
          pairing: {},
        },
        { clock: systemClock, onOpen: () => {} },
      ),
    ]);
    expect(await host.session.ping()).toBeGreaterThanOrEqual(0);
    // The next frame's u16 length gets its top bit set: the agent now waits for ~32 KiB that
    // will never come, and everything after it (pings included) vanishes into that wait.
    a.tap = (chunk) => {
      chunk[0]! |= 0x80;
      a.tap = null;
      return chunk;
    };
    const started = performance.now();
    // A call's first record (any record the peer would answer); no explicit ping from the test.
    await host.session.sendVchan(encodeVchan({ type: VchanType.OPEN, id: 0, meta: new Uint8Array(8) }));
    const end = await host.session.closed;
    const took = performance.now() - started;
    expect(end).toMatchObject({ code: "ping-unanswered" });
    expect(took).toBeGreaterThanOrEqual(PING_ANSWER_TIMEOUT_MS);
    // Probe (0.5 s, checked every 0.25 s) + deadline (2 s) + the second look; far below 30 s even
    // on a busy machine.
    expect(took).toBeLessThan(KEEPALIVE_TIMEOUT_MS / 3);
    // The host's close reaches the agent as EOF: it ends too, instead of waiting for its bytes.
    expect(await agent.session.closed).toBeInstanceOf(ProtocolError);
  });
});
