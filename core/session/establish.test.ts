import { describe, expect, test } from "bun:test";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { equalBytes } from "../bytes.ts";
import { ProtocolError } from "../errors.ts";
import { LINK_SUITES, type LinkSuiteName, makeResolver } from "../noise/suites.ts";
import type { Channel } from "../vchan/channel.ts";
import { PAIRING_ID_BYTES } from "../wire/limits.ts";
import { systemClock } from "./duplex.ts";
import { type Connected, connectAsInitiator, connectAsResponder } from "./establish.ts";
import type { PeerStore } from "./handshake.ts";
import { generateStaticKeyPair } from "./key-text.ts";
import type { HandshakeMode } from "./messages.ts";
import { LEGACY_PAIRING_ID } from "./pairing-id.ts";
import { SerialRecordLink } from "./serial-record-link.ts";
import { TcpRecordLink } from "./tcp-record-link.ts";

const resolver = makeResolver();
const hostKey = generateStaticKeyPair();
const agentKey = generateStaticKeyPair();
const token = new Uint8Array(32).fill(3);

/** A PeerStore as the agent's: one pairing id for every pinned key (the legacy one by default). */
function store(pinned: Uint8Array[], pairing = LEGACY_PAIRING_ID): PeerStore & { last: bigint } {
  const s = {
    last: -1n,
    isPinned: (k: Uint8Array) => pinned.some((p) => Buffer.from(p).equals(Buffer.from(k))),
    acceptTimestamp(_k: Uint8Array, ts: bigint, id: Uint8Array) {
      if (!equalBytes(id, pairing) || ts <= s.last) return false;
      s.last = ts;
      return true;
    },
  };
  return s;
}

interface Opts {
  mode: HandshakeMode;
  hostSuites?: LinkSuiteName[];
  agentSuites?: LinkSuiteName[];
  peers?: PeerStore;
  hostToken?: Uint8Array;
  agentToken?: Uint8Array;
  ts?: bigint;
  pairingId?: Uint8Array;
  onOpen?: (c: Channel, meta: Uint8Array) => void;
  serial?: boolean;
}

async function connect(o: Opts): Promise<[Connected, Connected]> {
  const [a, b] = duplexPair();
  const tuning = { clock: systemClock, onOpen: o.onOpen ?? (() => {}) };
  return Promise.all([
    connectAsInitiator(
      {
        link: o.serial ? new SerialRecordLink(a, 77n) : new TcpRecordLink(a),
        resolver,
        staticKey: hostKey,
        version: "host-1",
        suites: o.hostSuites ?? [...LINK_SUITES],
        mode: o.mode,
        responderKey: agentKey.publicKey,
        token: o.hostToken ?? token,
        pairingId: o.pairingId,
        timestamp: () => o.ts ?? BigInt(Date.now()) * 1000n,
      },
      tuning,
    ),
    connectAsResponder(
      {
        link: o.serial ? new SerialRecordLink(b) : new TcpRecordLink(b),
        resolver,
        staticKey: agentKey,
        version: "agent-1",
        suites: o.agentSuites ?? [...LINK_SUITES],
        peers: o.peers ?? store([hostKey.publicKey]),
        pairing: { token: o.agentToken ?? token, allowCode: true },
      },
      { ...tuning, onOpen: o.onOpen ?? (() => {}) },
    ),
  ]);
}

describe("handshakes", () => {
  test("reconnect (IK) authenticates both pinned keys and agrees on h", async () => {
    const [host, agent] = await connect({ mode: "reconnect" });
    expect(host.established.peerKey).toEqual(agentKey.publicKey);
    expect(agent.established.peerKey).toEqual(hostKey.publicKey);
    expect(host.session.hash).toEqual(agent.session.hash);
    expect(agent.established.peerVersion).toBe("host-1");
    expect(host.established.peerVersion).toBe("agent-1");
    host.session.close();
  });

  test("the responder's ranking picks the suite", async () => {
    const [host] = await connect({
      mode: "reconnect",
      agentSuites: ["25519_AESGCM_BLAKE2s", "25519_ChaChaPoly_BLAKE2s"],
    });
    expect(host.established.suite).toBe("25519_AESGCM_BLAKE2s");
    host.session.close();
  });

  test("no common suite is refused", async () => {
    await expect(
      connect({
        mode: "reconnect",
        hostSuites: ["25519_AESGCM_BLAKE2s"],
        agentSuites: ["25519_ChaChaPoly_BLAKE2s"],
      }),
    ).rejects.toThrow(ProtocolError);
  });

  test("an unpinned initiator key is refused", async () => {
    await expect(connect({ mode: "reconnect", peers: store([]) })).rejects.toThrow("handshake-unknown-key");
  });

  test("a replayed or older timestamp is refused", async () => {
    const peers = store([hostKey.publicKey]);
    const [first] = await connect({ mode: "reconnect", peers, ts: 100n });
    first.session.close();
    await expect(connect({ mode: "reconnect", peers, ts: 100n })).rejects.toThrow("handshake-replay");
    await expect(connect({ mode: "reconnect", peers, ts: 99n })).rejects.toThrow("handshake-replay");
  });

  test("both ends of a pairing learn the same pairing id, a fresh one per pairing; reconnect carries it", async () => {
    const [host, agent] = await connect({ mode: "pair-psk", peers: store([]) });
    const [host2] = await connect({ mode: "pair-psk", peers: store([]) });
    host.session.close();
    host2.session.close();
    expect(host.established.pairingId).toEqual(agent.established.pairingId);
    expect(host.established.pairingId).toHaveLength(PAIRING_ID_BYTES);
    expect(host2.established.pairingId).not.toEqual(host.established.pairingId);
    const peers = store([hostKey.publicKey], host.established.pairingId);
    const [back, device] = await connect({ mode: "reconnect", peers, pairingId: host.established.pairingId });
    back.session.close();
    expect(device.established.pairingId).toEqual(host.established.pairingId);
    // Another pairing's id (the earlier or a later pairing of the same keys) is refused, unrecorded.
    const last = peers.last;
    const other = connect({
      mode: "reconnect",
      peers,
      ts: last + 1_000_000n,
      pairingId: host2.established.pairingId,
    });
    await expect(other).rejects.toThrow("handshake-replay");
    expect(peers.last).toBe(last);
  });

  test("pair-psk succeeds with the token and fails with another", async () => {
    const [host, agent] = await connect({ mode: "pair-psk", peers: store([]) });
    expect(agent.established.peerKey).toEqual(hostKey.publicKey);
    host.session.close();
    await expect(connect({ mode: "pair-psk", hostToken: new Uint8Array(32).fill(4) })).rejects.toThrow(
      ProtocolError,
    );
  });

  test("pair-code gives both ends the same six digits, and vchan waits for both confirmations", async () => {
    const [host, agent] = await connect({ mode: "pair-code", peers: store([]) });
    expect(host.established.pairingCode).toMatch(/^\d{6}$/);
    expect(host.established.pairingCode).toBe(agent.established.pairingCode!);
    expect(() => host.vchan.open(new Uint8Array(0))).not.toThrow(); // open is queued...
    await Promise.all([host.session.confirmPairing(true), agent.session.confirmPairing(true)]).catch(
      () => {},
    );
  });
});

for (const serial of [false, true])
  describe(`transport phase over ${serial ? "serial" : "tcp"} framing`, () => {
    test("channels carry data both ways with EOF", async () => {
      const received: Promise<Uint8Array>[] = [];
      const [host] = await connect({
        mode: "reconnect",
        serial,
        onOpen: (ch, meta) => {
          received.push(
            (async () => {
              const parts: Uint8Array[] = [];
              for (let c = await ch.read(); c; c = await ch.read()) parts.push(c);
              await ch.write(meta);
              await ch.closeWrite();
              return Buffer.concat(parts);
            })(),
          );
        },
      });
      const ch = host.vchan.open(new TextEncoder().encode("hello"));
      const big = new Uint8Array(1_000_000).map((_, i) => i * 31);
      await ch.write(big);
      await ch.closeWrite();
      expect(await ch.read()).toEqual(new TextEncoder().encode("hello"));
      expect(await ch.read()).toBeNull();
      expect(Buffer.from(await received[0]!).equals(Buffer.from(big))).toBe(true);
      host.session.close();
    });

    test("rekey mid-transfer loses no byte and changes h", async () => {
      let sink: Promise<Uint8Array> | null = null;
      const [host, agent] = await connect({
        mode: "reconnect",
        serial,
        onOpen: (ch) => {
          sink = (async () => {
            const parts: Uint8Array[] = [];
            for (let c = await ch.read(); c; c = await ch.read()) parts.push(c);
            return Buffer.concat(parts);
          })();
        },
      });
      const before = host.session.hash;
      const ch = host.vchan.open(new Uint8Array(0));
      const data = new Uint8Array(3_000_000).map((_, i) => (i * 7) ^ (i >> 8));
      const writing = (async () => {
        for (let i = 0; i < data.length; i += 100_000) await ch.write(data.subarray(i, i + 100_000));
        await ch.closeWrite();
      })();
      await host.session.rekey();
      await host.session.rekey();
      await writing;
      expect(Buffer.from(await sink!).equals(Buffer.from(data))).toBe(true);
      expect(host.session.hash).not.toEqual(before);
      expect(host.session.hash).toEqual(agent.session.hash);
      expect(await host.session.ping()).toBeGreaterThanOrEqual(0);
      host.session.close();
    });
  });
