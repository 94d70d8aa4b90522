/**
 * Property and fuzz tests for the transport phase: what a Session does with arbitrary decrypted
 * records, and what TcpRecordLink does with arbitrary bytes from the wire.
 *
 * Session: a fake RecordLink plays a script of records (random bytes, every kind with random or
 * well-formed bodies, real rekey messages from a simulated peer, vchan messages) interleaved with
 * local actions (ping, rekey, confirm, open, close). Guarantees shown: the session either keeps
 * running or ends with a ProtocolError (or null for an orderly close) on `closed`; dispatch never
 * throws anything else; no record is dispatched after the session ended; vchan records never pass
 * before both pairing confirmations (nor a confirmation before the pairing code's reveal was
 * checked); every record it sends is well-formed; no unhandled rejection
 * (bun test fails a test on any; each run waits a few macrotasks so they surface inside it).
 *
 * TcpRecordLink: arbitrary chunks, and valid encrypted records with corruption, give records,
 * null at EOF, or a ProtocolError; never a corrupted record, never a record after a failure.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ProtocolError } from "../../core/errors.ts";
import { CipherState } from "../../core/noise/cipher-state.ts";
import { HandshakeState } from "../../core/noise/handshake-state.ts";
import { parsePattern } from "../../core/noise/patterns.ts";
import { LINK_SUITES, type LinkSuiteName, makeResolver, resolveLinkSuite } from "../../core/noise/suites.ts";
import type { Clock } from "../../core/session/duplex.ts";
import type { Established } from "../../core/session/handshake.ts";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import {
  buildPrologue,
  encodeVersionPayload,
  type HandshakeMode,
  RecordKind,
} from "../../core/session/messages.ts";
import { commitTo } from "../../core/session/pairing-code.ts";
import type { RecordLink } from "../../core/session/record-link.ts";
import { Session } from "../../core/session/session.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import { encodeVchan, VchanType } from "../../core/vchan/messages.ts";
import { Vchan } from "../../core/vchan/vchan.ts";
import { NOISE_MAX_MESSAGE, NOISE_MAX_PLAINTEXT } from "../../core/wire/limits.ts";
import { encodeTcpFrame } from "../../core/wire/tcp-frame.ts";
import { duplexPair } from "../helpers/duplex-pair.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };
const TIMEOUT = 5000 + RUNS * 10;

const resolver = makeResolver();
const SUITE: LinkSuiteName = LINK_SUITES[0];
const suite = resolveLinkSuite(resolver, SUITE);
const OWN = generateStaticKeyPair();
const PEER = generateStaticKeyPair();
/** session.ts binds this label into the rekey prologue. */
const REKEY_LABEL = new TextEncoder().encode("rekey");
const KNOWN_KINDS: number[] = Object.values(RecordKind);
/** The pairing nonces of pair-code sessions: ours and the simulated peer's. */
const OWN_NONCE = new Uint8Array(32).fill(5);
const PEER_NONCE = new Uint8Array(32).fill(6);

// Unhandled rejections: bun test fails the running test on any, so none needs a listener here.
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

// --- A scripted session ---

/** A script step: a record delivered by recv(), or a local action run just before the next one. */
type Step =
  | { readonly t: "record"; readonly bytes: Uint8Array }
  | { readonly t: "rekey-from-peer" } // a real REKEY msg1 from the peer (responder sessions)
  | { readonly t: "rekey-answer" } // the peer's real REKEY msg2 to our last msg1 (initiator sessions)
  | { readonly t: "reveal" } // the peer's real PAIR_REVEAL (pair-code, initiator sessions)
  | { readonly t: "ping" | "rekey" | "confirm" | "open" | "close" };

const manualClock: Clock = { now: () => 0, setTimer: () => () => {} };

/** Checks one record the session sends; returns a violation or null. */
function checkSent(record: Uint8Array): string | null {
  const kind = record[0];
  const body = record.subarray(1);
  if (kind === undefined || !KNOWN_KINDS.includes(kind)) return "sent an unknown record kind";
  if (record.length > NOISE_MAX_PLAINTEXT) return "sent a record over the limit";
  if ((kind === RecordKind.PING || kind === RecordKind.PONG) && body.length !== 8) return "bad ping/pong";
  if ((kind === RecordKind.REKEY_SWITCH || kind === RecordKind.PAIR_CONFIRM) && body.length !== 0)
    return "bad body";
  if (kind === RecordKind.PAIR_REVEAL && body.length !== 32) return "bad reveal";
  return null;
}

interface RunResult {
  readonly closed: ProtocolError | null;
  readonly violations: string[];
}

async function runSession(
  initiator: boolean,
  mode: HandshakeMode,
  steps: Step[],
  hangAtEnd: boolean,
): Promise<RunResult> {
  const violations: string[] = [];
  const queue = [...steps];
  let session!: Session;
  let mineConfirmed = false;
  let peerConfirmed = false;
  /** The code is known: at once for the committer (responder), after a good reveal otherwise. */
  let codeKnown = !initiator;
  /** Our pending REKEY msg1, answered by the simulated peer with a real msg2 on request. */
  let peerAnswer: Uint8Array | null = null;
  let linkClosed = false;
  let wake: ((v: Uint8Array | null) => void) | null = null;

  const runAction = (step: Step) => {
    switch (step.t) {
      case "ping":
        session.ping().catch(() => {});
        return;
      case "rekey":
        if (initiator) session.rekey().catch(() => {});
        return;
      case "confirm":
        if (mode === "pair-code" && !mineConfirmed && codeKnown) {
          mineConfirmed = true;
          session.confirmPairing(true).catch(() => {});
        }
        return;
      case "open":
        try {
          vchan.open(new Uint8Array(3)).closed.catch(() => {});
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
        }
        return;
      case "close":
        session.close();
        return;
    }
  };

  /** A real IK msg1 from the peer under the session's current hash (what a peer rekey sends). */
  const peerRekeyMessage = (): Uint8Array => {
    const hs = new HandshakeState(`Noise_IK_${SUITE}`, {
      suite,
      pattern: parsePattern("IK")!,
      initiator: true,
      prologue: buildPrologue("tcp", REKEY_LABEL, session.hash),
      s: PEER,
      rs: OWN.publicKey,
    });
    return Uint8Array.of(RecordKind.REKEY, ...hs.writeMessage(encodeVersionPayload("peer-1")));
  };

  const link: RecordLink = {
    transport: "tcp",
    maxRecord: NOISE_MAX_PLAINTEXT,
    recordsSinceKey: 0,
    async sendHandshake() {
      violations.push("handshake message in the transport phase");
    },
    async recvHandshake() {
      violations.push("handshake read in the transport phase");
      return new Uint8Array(0);
    },
    setSendKey() {},
    setRecvKey() {},
    async send(record) {
      if (linkClosed) throw new ProtocolError("link-lost", "closed");
      const v = checkSent(record);
      if (v) violations.push(v);
      if (record[0] === RecordKind.REKEY && initiator) {
        // The simulated peer answers our msg1 (-> e, es, s, ss) with msg2 (<- e, ee, se).
        const hs = new HandshakeState(`Noise_IK_${SUITE}`, {
          suite,
          pattern: parsePattern("IK")!,
          initiator: false,
          prologue: buildPrologue("tcp", REKEY_LABEL, session.hash),
          s: PEER,
        });
        hs.readMessage(record.subarray(1));
        peerAnswer = Uint8Array.of(RecordKind.REKEY, ...hs.writeMessage(encodeVersionPayload("peer-1")));
      }
    },
    recv() {
      for (;;) {
        if (linkClosed) return Promise.resolve(null);
        const step = queue.shift();
        if (step === undefined) {
          if (!hangAtEnd) return Promise.resolve(null);
          return new Promise((resolve) => {
            wake = resolve;
          });
        }
        if (step.t === "record") return Promise.resolve(step.bytes);
        if (step.t === "rekey-from-peer") return Promise.resolve(peerRekeyMessage());
        if (step.t === "reveal") return Promise.resolve(Uint8Array.of(RecordKind.PAIR_REVEAL, ...PEER_NONCE));
        if (step.t === "rekey-answer") {
          const answer = peerAnswer ?? Uint8Array.of(RecordKind.REKEY, 1, 2, 3);
          peerAnswer = null;
          return Promise.resolve(answer);
        }
        runAction(step);
      }
    },
    close() {
      linkClosed = true;
      wake?.(null);
    },
  };

  const vchan = new Vchan({
    initiator,
    send: (record) => session.sendVchan(record),
    onOpen: (channel) => {
      channel.read().catch(() => {});
    },
  });
  const established: Established = {
    mode,
    suite: SUITE,
    result: {
      send: keyed(1),
      receive: keyed(2),
      handshakeHash: new Uint8Array(32).fill(9),
      remoteStatic: PEER.publicKey,
    },
    peerKey: PEER.publicKey,
    peerVersion: "peer-1",
    ...(mode === "pair-code"
      ? {
          codePairing: initiator
            ? { role: "checker" as const, nonce: OWN_NONCE, commitment: commitTo(PEER_NONCE) }
            : { role: "committer" as const, nonce: OWN_NONCE, peerNonce: PEER_NONCE },
        }
      : {}),
  };
  session = new Session(link, established, {
    initiator,
    staticKey: OWN,
    suite,
    suiteName: SUITE,
    version: "own-1",
    clock: manualClock,
    onVchan: (record) => {
      if (mode === "pair-code" && !(mineConfirmed && peerConfirmed))
        violations.push("vchan before confirmation");
      vchan.receive(record);
    },
  });
  void session.closed.then((e) => vchan.end(e ?? new ProtocolError("link-lost")));

  // Watch dispatch (private): only ProtocolError may leave it, and nothing after the end.
  const inner = (session as unknown as { dispatch?: (r: Uint8Array) => void }).dispatch;
  if (typeof inner !== "function") throw new Error("Session.dispatch was renamed: update this fuzz test");
  (session as unknown as { dispatch: (r: Uint8Array) => void }).dispatch = (record: Uint8Array) => {
    if (!session.isOpen) violations.push("record dispatched after the session ended");
    try {
      inner.call(session, record);
    } catch (e) {
      if (!(e instanceof ProtocolError)) violations.push(`dispatch threw ${String(e)}`);
      throw e;
    }
    if (record[0] === RecordKind.PAIR_REVEAL && session.isOpen) codeKnown = true;
    if (record[0] === RecordKind.PAIR_CONFIRM && record.length === 1 && session.isOpen) {
      if (!codeKnown) violations.push("confirmation accepted before the reveal");
      peerConfirmed = true;
    }
  };

  session.start();
  for (let i = 0; i < 3; i++) await tick();
  if (hangAtEnd && session.isOpen) session.close();
  const closed = await session.closed;
  await tick();
  return { closed, violations };
}

function keyed(fill: number): CipherState {
  const cs = new CipherState(suite.cipher);
  cs.initializeKey(new Uint8Array(32).fill(fill));
  return cs;
}

const u64 = (n: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, false);
  return b;
};

const kindArb = fc.integer({ min: 0, max: 9 });
const recordArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 80 }) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(kindArb, fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 12 })))
      .map(([k, body]) => Uint8Array.of(k, ...body)),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(RecordKind.PING, RecordKind.PONG), fc.bigInt({ min: 0n, max: 4n }))
      .map(([k, id]) => Uint8Array.of(k, ...u64(id))),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      Uint8Array.of(RecordKind.PAIR_CONFIRM),
      Uint8Array.of(RecordKind.REKEY_SWITCH),
      Uint8Array.of(RecordKind.CLOSE, 0),
      Uint8Array.of(RecordKind.REKEY),
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom(VchanType.OPEN, VchanType.DATA, VchanType.EOF, VchanType.CREDIT, VchanType.RESET),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 3 }),
      )
      .map(([type, id, v]) => {
        switch (type) {
          case VchanType.OPEN:
            return encodeVchan({ type, id, meta: new Uint8Array(v) });
          case VchanType.DATA:
            return encodeVchan({ type, id, data: new Uint8Array(v + 1) });
          case VchanType.EOF:
            return encodeVchan({ type, id });
          case VchanType.CREDIT:
            return encodeVchan({ type, id, bytes: v + 1 });
          default:
            return encodeVchan({ type: VchanType.RESET, id, reason: v as 0 | 1 | 2 | 3 });
        }
      }),
  },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: recordArb.map((bytes) => ({ t: "record" as const, bytes })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Step>({ t: "rekey-from-peer" }, { t: "rekey-answer" }, { t: "reveal" }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Step>(
      { t: "ping" },
      { t: "rekey" },
      { t: "confirm" },
      { t: "open" },
      { t: "close" },
    ),
  },
);

function expectHealthy(r: RunResult): void {
  expect(r.violations).toEqual([]);
  if (r.closed !== null) expect(r.closed).toBeInstanceOf(ProtocolError);
}

describe("Session on arbitrary decrypted records", () => {
  test(
    "ends with ProtocolError or null, or keeps running; never anything else",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.constantFrom<HandshakeMode>("reconnect", "pair-code", "pair-psk"),
          fc.array(stepArb, { maxLength: 12 }),
          fc.boolean(),
          async (initiator, mode, steps, hang) =>
            expectHealthy(await runSession(initiator, mode, steps, hang)),
        ),
        params,
      );
    },
    TIMEOUT,
  );

  test("edge seeds: empty record, every kind byte alone and with a long body, a maximal record", async () => {
    const seeds: Uint8Array[] = [new Uint8Array(0)];
    for (let k = 0; k < 256; k++) seeds.push(Uint8Array.of(k), Uint8Array.of(k, ...new Uint8Array(9)));
    seeds.push(
      new Uint8Array(NOISE_MAX_PLAINTEXT).fill(RecordKind.REKEY),
      new Uint8Array(NOISE_MAX_PLAINTEXT),
    );
    for (const initiator of [true, false]) {
      for (const bytes of seeds) {
        const r = await runSession(initiator, "reconnect", [{ t: "record", bytes }], true);
        expectHealthy(r);
        if (!KNOWN_KINDS.includes(bytes[0] ?? -1)) expect(r.closed?.code).toBe("unexpected-message");
      }
    }
  });

  test("the simulated peer's rekeys are accepted (so the fuzz reaches the states after a rekey)", async () => {
    const responder = await runSession(
      false,
      "reconnect",
      [
        { t: "rekey-from-peer" },
        { t: "record", bytes: Uint8Array.of(RecordKind.REKEY_SWITCH) },
        { t: "ping" },
      ],
      true,
    );
    expectHealthy(responder);
    expect(responder.closed).toBeNull(); // ended by our close(), not by a fault
    const initiator = await runSession(
      true,
      "reconnect",
      [{ t: "rekey" }, { t: "rekey-answer" }, { t: "ping" }],
      true,
    );
    expectHealthy(initiator);
    expect(initiator.closed).toBeNull();
  });

  test("known faults end the session with their fixed codes", async () => {
    const cases: [boolean, HandshakeMode, Step[], string][] = [
      [false, "reconnect", [{ t: "record", bytes: Uint8Array.of(RecordKind.PING, 1) }], "frame-malformed"],
      [
        true,
        "reconnect",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.REKEY_SWITCH) }],
        "unexpected-message",
      ],
      [true, "reconnect", [{ t: "rekey-answer" }], "unexpected-message"],
      [false, "reconnect", [{ t: "rekey-from-peer" }, { t: "rekey-from-peer" }], "unexpected-message"],
      [false, "pair-code", [{ t: "record", bytes: encodeVchan({ type: 3, id: 1 }) }], "unexpected-message"],
      [false, "reconnect", [{ t: "record", bytes: encodeVchan({ type: 3, id: 1 }) }], "channel-unknown"],
      [
        false,
        "reconnect",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_CONFIRM) }],
        "unexpected-message",
      ],
      // pair-code: a confirmation before the reveal, a reveal that does not open the commitment,
      // a second reveal, and a reveal sent to the committing side.
      [
        true,
        "pair-code",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_CONFIRM) }],
        "unexpected-message",
      ],
      [
        true,
        "pair-code",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_REVEAL, ...new Uint8Array(32)) }],
        "pairing-commitment",
      ],
      [
        true,
        "pair-code",
        [{ t: "record", bytes: Uint8Array.of(RecordKind.PAIR_REVEAL, 1) }],
        "pairing-commitment",
      ],
      [true, "pair-code", [{ t: "reveal" }, { t: "reveal" }], "unexpected-message"],
      [false, "pair-code", [{ t: "reveal" }], "unexpected-message"],
    ];
    for (const [initiator, mode, steps, code] of cases) {
      const r = await runSession(initiator, mode, steps, true);
      expectHealthy(r);
      expect(r.closed?.code).toBe(code as ProtocolError["code"]);
    }
  });
});

// --- TcpRecordLink on arbitrary wire bytes ---

/** Reads with f until null or an error; returns what came out. */
async function drain(f: () => Promise<Uint8Array | null>): Promise<{ records: Uint8Array[]; end: string }> {
  const records: Uint8Array[] = [];
  for (;;) {
    try {
      const r = await f();
      if (r === null) return { records, end: "eof" };
      records.push(r);
    } catch (e) {
      if (e instanceof ProtocolError) return { records, end: e.code };
      throw e;
    }
  }
}

const chunksArb = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc
      .integer({ min: 1, max: 70 })
      .map((n) => Uint8Array.of(n >> 8, n & 0xff, ...new Uint8Array(Math.min(n, 8)))),
    fc.constantFrom(Uint8Array.of(0, 0), Uint8Array.of(0xff, 0xff), Uint8Array.of(0, 1, 0)),
  ),
  { maxLength: 8 },
);

describe("TcpRecordLink on arbitrary bytes", () => {
  test(
    "recvHandshake: a frame within the handshake limit, or ProtocolError",
    async () => {
      await fc.assert(
        fc.asyncProperty(chunksArb, async (chunks) => {
          const [a, b] = duplexPair();
          const link = new TcpRecordLink(b);
          for (const c of chunks) if (c.length > 0) await a.write(c);
          a.close();
          const out = await drain(() => link.recvHandshake());
          expect(out.end).not.toBe("eof"); // EOF in a handshake is link-lost
          for (const m of out.records) expect(m.length).toBeLessThanOrEqual(32 + 48 + 1024 + 16);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "recv: only the records that were sent, in order, then null or ProtocolError",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 5 }),
          fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 }))),
          chunksArb,
          fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 4 }),
          async (records, flip, garbage, split) => {
            const sender = keyed(5);
            let wire = concat(records.map((r) => encodeTcpFrame(sender.encryptWithAd(new Uint8Array(0), r))));
            if (flip) {
              wire = wire.slice();
              wire[flip[0] % wire.length]! ^= flip[1];
            }
            wire = concat([wire, ...garbage]);
            const [a, b] = duplexPair();
            const link = new TcpRecordLink(b);
            link.setRecvKey(keyed(5));
            for (let i = 0, k = 0; i < wire.length; k++) {
              const n = split.length ? split[k % split.length]! : wire.length;
              await a.write(wire.subarray(i, i + n));
              i += n;
            }
            a.close();
            const out = await drain(() => link.recv());
            expect(out.records.length).toBeLessThanOrEqual(records.length);
            for (const [i, r] of out.records.entries()) expect(equalBytes(r, records[i]!)).toBe(true);
            if (!flip && garbage.every((g) => g.length === 0)) {
              expect(out.records.length).toBe(records.length);
              expect(out.end).toBe("eof");
            }
          },
        ),
        params,
      );
    },
    TIMEOUT,
  );

  test("length edge seeds: 0, 1, the limit and a truncated body", async () => {
    const cases: [Uint8Array, string][] = [
      [Uint8Array.of(0, 0), "frame-malformed"],
      [Uint8Array.of(0, 1, 7), "decrypt"],
      [Uint8Array.of(0xff, 0xff, ...new Uint8Array(NOISE_MAX_MESSAGE)), "decrypt"],
      [Uint8Array.of(0x00, 0x10, 1, 2), "frame-truncated"],
      [Uint8Array.of(0x01), "frame-truncated"],
    ];
    for (const [wire, code] of cases) {
      const [a, b] = duplexPair();
      const link = new TcpRecordLink(b);
      link.setRecvKey(keyed(5));
      await a.write(wire);
      a.close();
      const out = await drain(() => link.recv());
      expect(out).toEqual({ records: [], end: code });
    }
    const [a, b] = duplexPair();
    await a.write(Uint8Array.of(0x05, 0x00, ...new Uint8Array(0x500)));
    a.close();
    expect(await drain(() => new TcpRecordLink(b).recvHandshake())).toEqual({
      records: [],
      end: "handshake-malformed",
    });
  });
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
