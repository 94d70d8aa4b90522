/**
 * The pairing man in the middle of issue 16, played in-process against the real handshake and
 * session code (docs/threat-model-pairing.md). The attacker completes the host's leg first (so
 * the host's code is fixed), then, as the host toward the device, grinds its message 3 offline
 * before sending it. Against the removed h-only code that choice picks the device's code; against
 * commit, then reveal it picks nothing: the device's nonce is unknown until after message 3, so
 * each attempt is one draw, and the codes agree by chance only (1 in 10^6).
 */
import { describe, expect, test } from "bun:test";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { DeviceLegAttacker, v1Code } from "../../test/helpers/pairing-mitm.ts";
import { ProtocolError } from "../errors.ts";
import { HandshakeState } from "../noise/handshake-state.ts";
import { parsePattern } from "../noise/patterns.ts";
import { LINK_SUITES, makeResolver, resolveLinkSuite } from "../noise/suites.ts";
import { systemClock } from "./duplex.ts";
import { type Connected, connectAsInitiator, connectAsResponder } from "./establish.ts";
import { PairingLockedError, type PeerStore, respondHandshake } from "./handshake.ts";
import { generateStaticKeyPair } from "./key-text.ts";
import { buildPrologue, encodeChoice, encodeVersionPayload } from "./messages.ts";
import { checkReveal, pairingCode } from "./pairing-code.ts";
import { Session } from "./session.ts";
import { TcpRecordLink } from "./tcp-record-link.ts";

const resolver = makeResolver();
const suites = [...LINK_SUITES];
const hostKey = generateStaticKeyPair();
const deviceKey = generateStaticKeyPair();
const mitmKey = generateStaticKeyPair();
const noPeers: PeerStore = { isPinned: () => false, acceptTimestamp: () => false };
const tuning = { clock: systemClock, onOpen: () => {} };
/** The attacker's guess at the device's nonce: any fixed value is as good as any other. */
const GUESS = new Uint8Array(32).fill(0x42);

/** The host's leg: the real host (initiator) paired with the attacker acting as a device. */
async function hostLeg(): Promise<{ host: Connected; mitm: Connected; code: string }> {
  const [a, b] = duplexPair();
  const [host, mitm] = await Promise.all([
    connectAsInitiator(
      {
        link: new TcpRecordLink(a),
        resolver,
        staticKey: hostKey,
        version: "host-1",
        suites,
        mode: "pair-code",
      },
      tuning,
    ),
    connectAsResponder(
      {
        link: new TcpRecordLink(b),
        resolver,
        staticKey: mitmKey,
        version: "mitm-1",
        suites,
        peers: noPeers,
        pairing: { allowCode: true },
      },
      tuning,
    ),
  ]);
  expect(host.established.pairingCode).toBe(mitm.established.pairingCode!);
  return { host, mitm, code: host.established.pairingCode! };
}

/** The device's leg up to message 2: the real device (responder) and the attacker as host. */
async function deviceLeg(counted: { n: number }) {
  const [a, b] = duplexPair();
  const device = connectAsResponder(
    {
      link: new TcpRecordLink(b),
      resolver,
      staticKey: deviceKey,
      version: "agent-1",
      suites,
      peers: noPeers,
      pairing: {
        allowCode: true,
        codeAttempt: () => {
          counted.n++;
        },
      },
    },
    tuning,
  );
  const attacker = await DeviceLegAttacker.start(new TcpRecordLink(a), resolver, mitmKey, suites);
  return { device, attacker };
}

const nonceOf = (i: number) => {
  const n = new Uint8Array(32);
  new DataView(n.buffer).setUint32(0, i);
  n[31] = 0x99;
  return n;
};

describe("the pairing man in the middle", () => {
  test("control: against the removed h-only code, grinding message 3 picks the device's code", async () => {
    const { host, mitm, code } = await hostLeg();
    const counted = { n: 0 };
    const { device, attacker } = await deviceLeg(counted);
    // 20,000 tries: each 3-digit match takes ~10^3, and the full 6 digits ~10^6 at this rate.
    const started = performance.now();
    let hit = null;
    let hits = 0;
    for (let i = 0; i < 20_000; i++) {
      const c = attacker.candidate(nonceOf(i));
      if (v1Code(c.h).slice(3) === code.slice(3)) {
        hits++;
        hit ??= c;
      }
    }
    const rate = 20_000 / ((performance.now() - started) / 1000);
    expect(hits).toBeGreaterThanOrEqual(1); // ~20 expected; none has probability e^-20
    console.log(
      `h-only code: ${hits} three-digit matches in 20000 tries (${Math.round(rate)} tries/s; all 6 digits: ~${(1e6 / rate).toFixed(0)} s per match)`,
    );
    // The device of today does not show v1Code(h): its code also depends on its own nonce.
    const revealed = await attacker.send(hit!);
    const d = await device;
    expect(d.established.pairingCode).toBe(DeviceLegAttacker.codeAfterReveal(hit!, revealed));
    expect(d.established.pairingCode).not.toBe(v1Code(hit!.h));
    for (const c of [host, mitm, d]) c.session.close();
  });

  test("20,000 grinding tries: the attacker's pick is fixed before the reveal, and the device's code is a fresh draw", async () => {
    const { host, mitm, code } = await hostLeg();
    for (let attempt = 0; attempt < 3; attempt++) {
      const counted = { n: 0 };
      const { device, attacker } = await deviceLeg(counted);
      // Best effort without the device's nonce: a fixed guess for it, and the message 3 whose
      // predicted code shares the most trailing digits with the host's code.
      const started = performance.now();
      let best = attacker.candidate(nonceOf(0));
      let bestScore = -1;
      for (let i = 0; i < 20_000; i++) {
        const c = attacker.candidate(nonceOf(i));
        const predicted = pairingCode(c.h, GUESS, c.nonce);
        let score = 0;
        while (score < 6 && predicted[5 - score] === code[5 - score]) score++;
        if (score > bestScore) [best, bestScore] = [c, score];
      }
      const ms = performance.now() - started;
      expect(ms).toBeLessThan(60_000);
      expect(counted.n).toBe(0); // nothing sent yet: the device has counted no attempt
      const predicted = pairingCode(best.h, GUESS, best.nonce);
      const revealed = await attacker.send(best);
      checkReveal(attacker.commitment, revealed); // the device kept its word
      expect(counted.n).toBe(1); // counted before the reveal left
      const d = await device;
      const shown = d.established.pairingCode!;
      // The attacker now knows the device's code, but every input to it is already fixed.
      expect(shown).toBe(DeviceLegAttacker.codeAfterReveal(best, revealed));
      // Each fails only by chance (10^-6): the pick had no hold on the device's nonce.
      expect(shown).not.toBe(predicted);
      expect(shown).not.toBe(code);
      console.log(
        `attempt ${attempt + 1}: 20000 tries in ${Math.round(ms)} ms; best guess shared ${bestScore} digits; device ${shown}, host ${code}`,
      );
      d.session.close();
    }
    host.session.close();
    mitm.session.close();
  }, 120_000);

  test("over 200 device legs, grinding wins the last digit 200 times on an h-only code and ~1 in 10 on the real one", async () => {
    const { host, mitm, code } = await hostLeg();
    const counted = { n: 0 };
    const N = 200;
    let v1Hits = 0;
    let lastDigitHits = 0;
    let fullHits = 0;
    for (let leg = 0; leg < N; leg++) {
      const { device, attacker } = await deviceLeg(counted);
      let pick = null;
      let v1Pick = null;
      for (let i = 0; (!pick || !v1Pick) && i < 2000; i++) {
        const c = attacker.candidate(nonceOf(leg * 2000 + i));
        if (!pick && pairingCode(c.h, GUESS, c.nonce)[5] === code[5]) pick = c;
        if (!v1Pick && v1Code(c.h)[5] === code[5]) v1Pick = c;
      }
      if (v1Pick) v1Hits++;
      await attacker.send(pick!);
      const d = await device;
      const shown = d.established.pairingCode!;
      if (shown[5] === code[5]) lastDigitHits++;
      if (shown === code) fullHits++;
      d.session.close();
    }
    console.log(
      `last digit: h-only ${v1Hits}/${N}, commit-reveal ${lastDigitHits}/${N}; full code ${fullHits}/${N}`,
    );
    expect(counted.n).toBe(N);
    expect(v1Hits).toBe(N);
    // Binomial(200, 1/10): mean 20, sd 4.2. Outside [4, 44] has probability < 1e-6.
    expect(lastDigitHits).toBeGreaterThanOrEqual(4);
    expect(lastDigitHits).toBeLessThanOrEqual(44);
    expect(fullHits).toBeLessThanOrEqual(1); // 200 draws at 10^-6 each
    host.session.close();
    mitm.session.close();
  }, 120_000);

  test("an attacker that reveals another nonce than it committed to is caught by the host", async () => {
    const [a, b] = duplexPair();
    const hostSide = connectAsInitiator(
      {
        link: new TcpRecordLink(a),
        resolver,
        staticKey: hostKey,
        version: "host-1",
        suites,
        mode: "pair-code",
      },
      tuning,
    );
    const link = new TcpRecordLink(b);
    const e = await respondHandshake({
      link,
      resolver,
      staticKey: mitmKey,
      version: "mitm-1",
      suites,
      peers: noPeers,
      pairing: { allowCode: true },
    });
    const cp = e.codePairing!;
    if (cp.role !== "committer") throw new Error("the responder commits");
    const lying = new Session(
      link,
      { ...e, codePairing: { ...cp, nonce: GUESS } },
      {
        initiator: false,
        staticKey: mitmKey,
        suite: resolveLinkSuite(resolver, e.suite),
        suiteName: e.suite,
        version: "mitm-1",
        clock: systemClock,
        onVchan: () => {},
      },
    );
    lying.start();
    const error = await hostSide.catch((x: unknown) => x);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe("pairing-commitment");
    lying.close();
  });

  test("the device counts the attempt before its reveal leaves; a refused count reveals nothing", async () => {
    const [a, b] = duplexPair();
    let release!: () => void;
    let entered!: () => void;
    const inCount = new Promise<void>((r) => {
      entered = r;
    });
    const device = connectAsResponder(
      {
        link: new TcpRecordLink(b),
        resolver,
        staticKey: deviceKey,
        version: "agent-1",
        suites,
        peers: noPeers,
        pairing: {
          allowCode: true,
          codeAttempt: () =>
            new Promise<void>((r) => {
              release = r;
              entered();
            }),
        },
      },
      tuning,
    );
    const attacker = await DeviceLegAttacker.start(new TcpRecordLink(a), resolver, mitmKey, suites);
    let revealed = false;
    const reveal = attacker.send(attacker.candidate(nonceOf(1))).then((n) => {
      revealed = true;
      return n;
    });
    await inCount;
    for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
    expect(revealed).toBe(false);
    release();
    expect(await reveal).toHaveLength(32);
    (await device).session.close();

    // A count that throws (the lock was reached meanwhile) ends the attempt with nothing sent.
    const [c, d] = duplexPair();
    const locked = connectAsResponder(
      {
        link: new TcpRecordLink(d),
        resolver,
        staticKey: deviceKey,
        version: "agent-1",
        suites,
        peers: noPeers,
        pairing: {
          allowCode: true,
          codeAttempt: () => {
            throw new PairingLockedError(15);
          },
        },
      },
      tuning,
    );
    const lockedResult = locked.catch((x: unknown) => x);
    const late = await DeviceLegAttacker.start(new TcpRecordLink(c), resolver, mitmKey, suites);
    await expect(late.send(late.candidate(nonceOf(2)))).rejects.toThrow("no reveal");
    expect(await lockedResult).toBeInstanceOf(PairingLockedError);
  });

  test("a locked device refuses the offer and says for how long", async () => {
    const [a, b] = duplexPair();
    const host = connectAsInitiator(
      {
        link: new TcpRecordLink(a),
        resolver,
        staticKey: hostKey,
        version: "host-1",
        suites,
        mode: "pair-code",
      },
      tuning,
    );
    const device = connectAsResponder(
      {
        link: new TcpRecordLink(b),
        resolver,
        staticKey: deviceKey,
        version: "agent-1",
        suites,
        peers: noPeers,
        pairing: { allowCode: true, codeLockedMinutes: 7 },
      },
      tuning,
    );
    const [h, d] = await Promise.all([host.catch((x: unknown) => x), device.catch((x: unknown) => x)]);
    expect(h).toBeInstanceOf(PairingLockedError);
    expect((h as PairingLockedError).minutes).toBe(7);
    expect(d).toBeInstanceOf(PairingLockedError);
  });

  test("version 1 peers (plain version payloads, h-only code) fail loudly on both sides", async () => {
    // A v1 host: message 3 without a nonce.
    const [a, b] = duplexPair();
    const device = connectAsResponder(
      {
        link: new TcpRecordLink(b),
        resolver,
        staticKey: deviceKey,
        version: "agent-1",
        suites,
        peers: noPeers,
        pairing: { allowCode: true, codeAttempt: () => expect.unreachable("no attempt is counted") },
      },
      tuning,
    );
    const oldHost = await DeviceLegAttacker.start(new TcpRecordLink(a), resolver, hostKey, suites);
    await oldHost.sendMessage3(oldHost.candidate(GUESS, encodeVersionPayload("host-0")));
    const err = await device.catch((x: unknown) => x);
    expect((err as ProtocolError).code).toBe("handshake-malformed");

    // A v1 device: message 2 without a commitment.
    const [c, d] = duplexPair();
    const hostSide = connectAsInitiator(
      {
        link: new TcpRecordLink(c),
        resolver,
        staticKey: hostKey,
        version: "host-1",
        suites,
        mode: "pair-code",
      },
      tuning,
    );
    const link = new TcpRecordLink(d);
    const offer = await link.recvHandshake();
    const choice = encodeChoice({ suite: LINK_SUITES[0] });
    await link.sendHandshake(choice);
    const hs = new HandshakeState(`Noise_XX_${LINK_SUITES[0]}`, {
      suite: resolveLinkSuite(resolver, LINK_SUITES[0]),
      pattern: parsePattern("XX")!,
      initiator: false,
      prologue: buildPrologue(link.transport, offer, choice),
      s: deviceKey,
    });
    hs.readMessage(await link.recvHandshake());
    await link.sendHandshake(hs.writeMessage(encodeVersionPayload("agent-0")));
    const hostErr = await hostSide.catch((x: unknown) => x);
    expect((hostErr as ProtocolError).code).toBe("handshake-malformed");
  });
});
