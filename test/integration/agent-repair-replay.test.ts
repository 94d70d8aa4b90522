/**
 * A network attacker against the real agent process: it records a reconnect (the offer and IK
 * message 1, the bytes on the TCP wire), waits until the host pairs again with the same key (a
 * fresh pairing starts the device's IK timestamps over, issue 9), and replays the recording.
 * Before pairing ids the replay was accepted once: its timestamp was above everything the new
 * pairing had recorded, and the agent took it as the host, replacing the host's live session.
 * Now message 1 names the pairing it was made for (core/session/pairing-id.ts): the agent refuses
 * it with handshake-replay, hosts.json stays byte for byte, and the host's session stays up.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { makeResolver } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { connectAsInitiator } from "../../core/session/establish.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { nativeCiphers } from "../../platform/native-aead.ts";
import { rankLinkSuites } from "../../platform/suite-ranking.ts";
import { tcpConnect } from "../../transport/tcp.ts";
import { cleanup, runCli, startAgent } from "../helpers/agent/harness.ts";
import { connectHost, nextTimestamp, pairHost, pairingIdFor } from "../helpers/agent/host-side.ts";

afterEach(cleanup);

const resolver = makeResolver(nativeCiphers());

describe("IK message 1 replayed after a re-pairing (network attacker)", () => {
  test("the recorded reconnect is refused with handshake-replay; hosts.json and the host's session are untouched", async () => {
    const agent = await startAgent();
    const { c, hostKey, deviceKey } = await pairHost(agent);
    c.session.close();
    await agent.waitLine(/session-down/);

    // The host reconnects; the attacker records every byte it writes during the handshake.
    const wire: Uint8Array[] = [];
    const stream = await tcpConnect("127.0.0.1", agent.port);
    const write = stream.write.bind(stream);
    let recording = true;
    stream.write = (data) => {
      if (recording) wire.push(data.slice());
      return write(data);
    };
    const recorded = await connectAsInitiator(
      {
        link: new TcpRecordLink(stream),
        resolver,
        staticKey: hostKey,
        version: "test-host-1",
        suites: rankLinkSuites(resolver),
        mode: "reconnect",
        responderKey: deviceKey,
        pairingId: pairingIdFor(hostKey),
        timestamp: nextTimestamp,
      },
      { clock: systemClock, onOpen: (ch) => ch.close() },
    );
    recording = false;
    expect(wire).toHaveLength(2); // the offer frame and the IK message 1 frame
    recorded.session.close();
    await agent.waitLine(/session-down/);

    // The host pairs again with the same key (e.g. after losing its timestamp file).
    const r = await runCli(["pair-token", "--config", agent.configPath]);
    expect(r.code).toBe(0);
    const token = Uint8Array.from(Buffer.from(r.stdout.trim(), "hex"));
    const live = await connectHost(agent.port, { mode: "pair-psk", hostKey, token });
    await agent.waitLine(/session-up .*mode=pair-psk/);
    const hostsPath = join(agent.dir, "state", "hosts.json");
    const before = readFileSync(hostsPath, "utf8");
    expect(JSON.parse(before).hosts[0].lastTimestamp).toBeNull(); // the replay state starts over

    // The replay: the recorded bytes, from another connection.
    const replay = net.connect({ host: "127.0.0.1", port: agent.port });
    const answered: Buffer[] = [];
    replay.on("data", (d: Buffer) => answered.push(d));
    const closed = new Promise<void>((done) => replay.once("close", () => done()));
    replay.once("connect", () => replay.write(Buffer.concat(wire)));
    await agent.waitLine(/refused via="tcp 127\.0\.0\.1:\d+" code=handshake-replay/);
    await closed; // the agent hung up after its choice: no message 2
    expect(Buffer.concat(answered).length).toBeLessThan(64);

    expect(readFileSync(hostsPath, "utf8")).toBe(before);
    expect(agent.lines.some((l) => /session-replaced/.test(l))).toBe(false);
    expect(live.session.isOpen).toBe(true);
    expect(await live.session.ping()).toBeGreaterThanOrEqual(0);

    // The host itself reconnects under the new pairing.
    const back = await connectHost(agent.port, { mode: "reconnect", hostKey, deviceKey });
    await agent.waitLine(/session-up .*mode=reconnect/);
    expect(back.session.isOpen).toBe(true);
    back.session.close();
  }, 60_000);
});
