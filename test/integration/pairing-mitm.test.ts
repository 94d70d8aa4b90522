/**
 * The pairing man in the middle through real processes (issue 16, point 1): the real host daemon
 * and `qubes-air pair --code` connect to an attacker in this test process, which pairs with the
 * host as a device (fixing the host's code), then dials the real agent as a host and grinds its
 * message 3 (20,000 variants) before sending one. The device's code comes out of its own nonce,
 * revealed only after that: the two codes differ (but for a 1-in-10^6 chance), and the device has
 * counted the attempt. Also the CLI's words when the device has locked code pairing.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LINK_SUITES, makeResolver, resolveLinkSuite } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { type Connected, connectAsResponder } from "../../core/session/establish.ts";
import { respondHandshake } from "../../core/session/handshake.ts";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import { pairingCode } from "../../core/session/pairing-code.ts";
import { Session } from "../../core/session/session.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import {
  cleanup,
  cli,
  DEVICE,
  makeHost,
  startAgent,
  startDaemon,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";
import { tcpConnect, tcpListen } from "../../transport/tcp.ts";
import { DeviceLegAttacker } from "../helpers/pairing-mitm.ts";

setDefaultTimeout(60_000);
afterEach(cleanup);

const resolver = makeResolver();
const suites = [...LINK_SUITES];

describe("pairing man in the middle, real host daemon and real agent", () => {
  test("grinding 20,000 message 3 variants toward the device does not make its code the host's", async () => {
    const codeFile = join(tempDir(), "codes");
    const agent = await startAgent({ allowCodePairing: true, codeFile });
    const mitmKey = generateStaticKeyPair();
    const GUESS = new Uint8Array(32).fill(0x42);
    type Outcome = { hostCode: string; predicted: string; deviceCode: string; tries: number };
    let resolve!: (o: Outcome) => void;
    let reject!: (e: unknown) => void;
    const result = new Promise<Outcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const legs: Connected[] = [];
    const listener = await tcpListen("127.0.0.1", 0, (stream) => {
      void (async () => {
        // The host's leg: the attacker is an honest-looking device; its code is now fixed.
        const toHost = await connectAsResponder(
          {
            link: new TcpRecordLink(stream),
            resolver,
            staticKey: mitmKey,
            version: "0.1.0",
            suites,
            peers: { isPinned: () => false, acceptTimestamp: () => false },
            pairing: { allowCode: true },
          },
          { clock: systemClock, onOpen: () => {} },
        );
        legs.push(toHost);
        const hostCode = toHost.established.pairingCode!;
        // The device's leg: grind message 3 for the best match under a fixed guess.
        const toDevice = new TcpRecordLink(await tcpConnect("127.0.0.1", agent.port!));
        const attacker = await DeviceLegAttacker.start(toDevice, resolver, mitmKey, suites);
        let best = attacker.candidate(new Uint8Array(32));
        let bestScore = -1;
        let tries = 0;
        for (; tries < 20_000; tries++) {
          const nonce = new Uint8Array(32);
          new DataView(nonce.buffer).setUint32(0, tries);
          const c = attacker.candidate(nonce);
          const p = pairingCode(c.h, GUESS, c.nonce);
          let score = 0;
          while (score < 6 && p[5 - score] === hostCode[5 - score]) score++;
          if (score > bestScore) [best, bestScore] = [c, score];
        }
        const revealed = await attacker.send(best);
        resolve({
          hostCode,
          predicted: pairingCode(best.h, GUESS, best.nonce),
          deviceCode: DeviceLegAttacker.codeAfterReveal(best, revealed),
          tries,
        });
        toDevice.close();
      })().catch(reject);
    });
    const mitmPort = listener.port;

    const host = makeHost();
    await startDaemon(host);
    const pairing = cli(host, ["pair", DEVICE, "--tcp", `127.0.0.1:${mitmPort}`, "--code"], "n\n");
    const r = await result;
    const shown = await agent.waitLine(/pairing-code code=(\d{6}) .*attempt=1\/3/);
    const out = await pairing;
    const hostShown = out.stderr.match(/Pairing code: (\d{3}) (\d{3})\n/)!;
    expect(`${hostShown[1]}${hostShown[2]}`).toBe(r.hostCode);
    expect(shown[1]).toBe(r.deviceCode); // the attacker learns the device's code only after the reveal
    expect(r.tries).toBe(20_000);
    expect(r.deviceCode).not.toBe(r.hostCode); // 1 in 10^6
    expect(r.deviceCode).not.toBe(r.predicted); // 1 in 10^6: its pick had no hold on the device's nonce
    expect(out.code).toBe(1); // the user saw two codes (or was never asked on the device) and said no
    await agent.waitLine(/refused .*mode=pair-code/); // after its confirmer ran
    expect(readFileSync(codeFile, "utf8")).toBe(`${r.deviceCode}\n`);
    for (const leg of legs) leg.session.close();
    await listener.close();
  });

  test("`qubes-air pair --code` says when the device has locked code pairing", async () => {
    const codeFile = join(tempDir(), "codes");
    const agent = await startAgent({ allowCodePairing: true, codeFile });
    const host = makeHost();
    await startDaemon(host);
    const args = ["pair", DEVICE, "--tcp", `127.0.0.1:${agent.port}`, "--code"];
    for (let i = 1; i <= 3; i++) {
      const no = await cli(host, args, "n\n"); // the host's user refuses: an abandoned attempt
      expect([no.code, no.stderr]).toEqual([1, expect.stringContaining("pairing cancelled")]);
      await agent.waitLine(/refused .*mode=pair-code/);
    }
    const locked = await cli(host, args, "y\n");
    expect([locked.code, locked.stderr]).toEqual([
      1,
      "qubes-air pair: the device refused: code pairing locked for 15 minutes after 3 failed attempts " +
        "(try again then, or pair with a token)\n",
    ]);
    await agent.waitLine(
      /refused .*code=pairing-locked why="code pairing locked for 15 minutes after 3 failed attempts"/,
    );
    expect((await cli(host, ["list", "--json"])).stdout).toBe("[]\n");
  });

  test("a device whose reveal does not open its commitment: the CLI says the pairing is tampered with", async () => {
    const liar = generateStaticKeyPair();
    const sessions: Session[] = [];
    const listener = await tcpListen("127.0.0.1", 0, (stream) => {
      void (async () => {
        const link = new TcpRecordLink(stream);
        const e = await respondHandshake({
          link,
          resolver,
          staticKey: liar,
          version: "0.1.0",
          suites,
          peers: { isPinned: () => false, acceptTimestamp: () => false },
          pairing: { allowCode: true },
        });
        const cp = e.codePairing!;
        // It committed to one nonce and reveals another (chosen after seeing the host's).
        const lying = new Session(
          link,
          { ...e, codePairing: { ...cp, nonce: new Uint8Array(32).fill(7) } },
          {
            initiator: false,
            staticKey: liar,
            suite: resolveLinkSuite(resolver, e.suite),
            suiteName: e.suite,
            version: "0.1.0",
            clock: systemClock,
            onVchan: () => {},
          },
        );
        sessions.push(lying);
        lying.start();
      })().catch(() => {});
    });
    const host = makeHost();
    await startDaemon(host);
    const r = await cli(host, ["pair", DEVICE, "--tcp", `127.0.0.1:${listener.port}`, "--code"], "y\n");
    expect([r.code, r.stderr]).toEqual([
      1,
      "qubes-air pair: the device's reveal did not match its commitment: something between here and " +
        "the device is tampering with the pairing; nothing was stored\n",
    ]);
    expect((await cli(host, ["list", "--json"])).stdout).toBe("[]\n");
    for (const s of sessions) s.close();
    await listener.close();
  });
});
