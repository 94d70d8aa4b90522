/**
 * The device's replay state across a re-pairing (agent/link/state.ts, docs/threat-model.md
 * "Replay of a reconnect"): an IK message 1 captured off the wire under one pairing is refused
 * after the same host key pairs again, with ProtocolError "handshake-replay", and hosts.json is
 * not touched. Real AgentState on disk, real handshakes over an in-memory pipe; the replay is the
 * captured bytes played back to respondHandshake. Also the hosts.json pairing-id field.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, ProtocolError } from "../../core/errors.ts";
import { LINK_SUITES, makeResolver } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { type Connected, connectAsInitiator, connectAsResponder } from "../../core/session/establish.ts";
import { respondHandshake } from "../../core/session/handshake.ts";
import { formatPublicKey, generateStaticKeyPair, type StaticKeyPair } from "../../core/session/key-text.ts";
import type { HandshakeMode } from "../../core/session/messages.ts";
import { formatPairingId, LEGACY_PAIRING_ID } from "../../core/session/pairing-id.ts";
import type { RecordLink } from "../../core/session/record-link.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { ScriptedLink } from "../../test/helpers/scripted-link.ts";
import { AgentState } from "./state.ts";

const resolver = makeResolver();
const TOKEN = new Uint8Array(32).fill(5);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function openState(): Promise<AgentState> {
  const dir = mkdtempSync(join(tmpdir(), "qa-state-"));
  dirs.push(dir);
  chmodSync(dir, 0o700);
  return AgentState.open(dir);
}

/** Records the handshake messages a link sends (what an eavesdropper sees of them). */
function recorded(link: RecordLink, sent: Uint8Array[]): RecordLink {
  const send = link.sendHandshake.bind(link);
  link.sendHandshake = (m) => {
    sent.push(m.slice());
    return send(m);
  };
  return link;
}

let ts = 1_000n;

/** One host <-> device handshake over a pipe; the host's handshake messages go to `wire`. */
async function link(
  state: AgentState,
  host: StaticKeyPair,
  mode: HandshakeMode,
  o: { pairingId?: Uint8Array; wire?: Uint8Array[] } = {},
): Promise<[Connected, Connected]> {
  const [a, b] = duplexPair();
  const tuning = { clock: systemClock, onOpen: () => {} };
  const stamp = ++ts;
  return Promise.all([
    connectAsInitiator(
      {
        link: recorded(new TcpRecordLink(a), o.wire ?? []),
        resolver,
        staticKey: host,
        version: "host-1",
        suites: [...LINK_SUITES],
        mode,
        responderKey: state.deviceKey.publicKey,
        token: TOKEN,
        pairingId: o.pairingId,
        timestamp: () => stamp,
      },
      tuning,
    ),
    connectAsResponder(
      {
        link: new TcpRecordLink(b),
        resolver,
        staticKey: state.deviceKey,
        version: "agent-1",
        suites: [...LINK_SUITES],
        peers: state.peers,
        pairing: { token: TOKEN },
      },
      tuning,
    ),
  ]);
}

/** A token pairing as agent/link/sessions.ts completes it: pinned under the pairing's id. */
async function pair(state: AgentState, host: StaticKeyPair): Promise<Uint8Array> {
  const [h, d] = await link(state, host, "pair-psk");
  expect(h.established.pairingId).toEqual(d.established.pairingId);
  await state.pin(d.established.peerKey, d.established.pairingId);
  h.session.close();
  return h.established.pairingId;
}

describe("IK replay across a re-pairing", () => {
  test("a message 1 captured under the earlier pairing is refused (handshake-replay); nothing changes", async () => {
    const state = await openState();
    const host = generateStaticKeyPair();
    const first = await pair(state, host);

    // The host reconnects; an eavesdropper records the offer and message 1.
    const wire: Uint8Array[] = [];
    const [h] = await link(state, host, "reconnect", { pairingId: first, wire });
    h.session.close();
    expect(wire).toHaveLength(2); // offer, IK message 1

    // Played back at once it is a plain replay (the timestamp was recorded).
    const again = await respondHandshake({
      link: new ScriptedLink(wire.map((m) => m.slice())),
      resolver,
      staticKey: state.deviceKey,
      version: "agent-1",
      suites: [...LINK_SUITES],
      peers: state.peers,
      pairing: {},
    }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ProtocolError);
    expect((again as ProtocolError).code).toBe("handshake-replay");

    // The host pairs again (same key): the device's timestamps for it start over...
    const second = await pair(state, host);
    expect(second).not.toEqual(first);
    const hostsPath = state.hostsPath;
    const before = readFileSync(hostsPath, "utf8");
    const entry = JSON.parse(before).hosts[0];
    expect(entry).toEqual({
      key: formatPublicKey(host.publicKey),
      pairedAt: entry.pairedAt,
      pairing: formatPairingId(second),
      lastTimestamp: null,
    });

    // ...so the old message 1's timestamp is above everything recorded, yet it is refused: it
    // names the earlier pairing.
    const replay = new ScriptedLink(wire.map((m) => m.slice()));
    const r = await respondHandshake({
      link: replay,
      resolver,
      staticKey: state.deviceKey,
      version: "agent-1",
      suites: [...LINK_SUITES],
      peers: state.peers,
      pairing: {},
    }).catch((e: unknown) => e);
    expect(r).toBeInstanceOf(ProtocolError);
    expect((r as ProtocolError).code).toBe("handshake-replay");
    expect(replay.sent).toHaveLength(1); // the choice only: no message 2, no session
    await state.persisted();
    expect(readFileSync(hostsPath, "utf8")).toBe(before);

    // The host itself, with the new pairing's id, gets in; with the old one it does not.
    const [back] = await link(state, host, "reconnect", { pairingId: second });
    expect(back.session.isOpen).toBe(true);
    back.session.close();
    await expect(link(state, host, "reconnect", { pairingId: first })).rejects.toBeInstanceOf(ProtocolError);
  });
});

describe("hosts.json pairing ids", () => {
  const write = (state: AgentState, host: Record<string, unknown>) => {
    writeFileSync(state.hostsPath, JSON.stringify({ version: 1, hosts: [host] }), { mode: 0o600 });
    return AgentState.open(state.dir);
  };

  test("an entry from before pairing ids reconnects with the legacy id only, and keeps the file's form", async () => {
    const state = await openState();
    const host = generateStaticKeyPair();
    const legacy = {
      key: formatPublicKey(host.publicKey),
      pairedAt: "2026-01-01T00:00:00.000Z",
      lastTimestamp: null,
    };
    const reopened = await write(state, legacy);
    await expect(
      link(reopened, host, "reconnect", { pairingId: new Uint8Array(16).fill(1) }),
    ).rejects.toThrow("handshake-replay");
    const [c] = await link(reopened, host, "reconnect", { pairingId: LEGACY_PAIRING_ID });
    c.session.close();
    await reopened.persisted();
    const saved = JSON.parse(readFileSync(reopened.hostsPath, "utf8")).hosts[0];
    expect(Object.keys(saved).sort()).toEqual(["key", "lastTimestamp", "pairedAt"]);
  });

  test("pinned hosts' source addresses survive a restart; a bad list is a ConfigError", async () => {
    const state = await openState();
    state.rememberHostAddress("192.0.2.7");
    state.rememberHostAddress("192.0.2.7"); // known: no second entry
    state.rememberHostAddress("not an address");
    for (let i = 0; i < 20; i++) state.rememberHostAddress(`198.51.100.${i}`);
    await state.persisted();
    const reopened = await AgentState.open(state.dir);
    expect(reopened.hostAddresses).toHaveLength(16); // KNOWN_HOST_ADDRESSES_MAX, newest kept
    expect(reopened.hostAddresses.at(-1)).toBe("198.51.100.19");
    expect(reopened.hostAddresses).not.toContain("192.0.2.7");
    for (const bad of [["x"], "192.0.2.1", [1], Array.from({ length: 17 }, (_, i) => `10.0.0.${i}`)]) {
      writeFileSync(state.hostsPath, JSON.stringify({ version: 1, hosts: [], hostAddresses: bad }), {
        mode: 0o600,
      });
      expect(await AgentState.open(state.dir).catch((e: unknown) => e)).toBeInstanceOf(ConfigError);
    }
  });

  test("a malformed pairing id is a ConfigError", async () => {
    const state = await openState();
    const key = formatPublicKey(generateStaticKeyPair().publicKey);
    for (const pairing of ["00", "zz".repeat(16), 7, "AB".repeat(16)]) {
      const r = await write(state, { key, pairedAt: "x", pairing, lastTimestamp: null }).catch(
        (e: unknown) => e,
      );
      expect(r).toBeInstanceOf(ConfigError);
    }
  });
});
