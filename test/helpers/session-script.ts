/**
 * A scripted Session for core/session tests and the session fuzz test: a fake RecordLink plays a
 * script of decrypted records (and real rekey messages from a simulated peer), interleaved with
 * local actions (ping, rekey, confirm, open, close), and records every violation of the session's
 * guarantees it sees: a malformed record sent, a handshake message in the transport phase, a vchan
 * record before both pairing confirmations (or a confirmation before the pairing code's reveal was
 * checked), a record dispatched after the end, or anything but a ProtocolError leaving dispatch.
 * Must never: hide a violation (each is a string in RunResult.violations, for the caller to check).
 */
import { expect } from "bun:test";
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
import { Vchan } from "../../core/vchan/vchan.ts";
import { NOISE_MAX_PLAINTEXT } from "../../core/wire/limits.ts";

export const SUITE: LinkSuiteName = LINK_SUITES[0];
export const suite = resolveLinkSuite(makeResolver(), SUITE);
const OWN = generateStaticKeyPair();
const PEER = generateStaticKeyPair();
/** session.ts binds this label into the rekey prologue. */
const REKEY_LABEL = new TextEncoder().encode("rekey");
export const KNOWN_KINDS: number[] = Object.values(RecordKind);
/** The pairing nonces of pair-code sessions: ours and the simulated peer's. */
const OWN_NONCE = new Uint8Array(32).fill(5);
const PEER_NONCE = new Uint8Array(32).fill(6);

// Unhandled rejections: bun test fails the running test on any, so none needs a listener here.
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A script step: a record delivered by recv(), or a local action run just before the next one. */
export type Step =
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

export interface RunResult {
  readonly closed: ProtocolError | null;
  readonly violations: string[];
}

/**
 * Runs one session through `steps`. With hangAtEnd, recv() waits after the script instead of
 * reporting EOF, and the session is closed by us after a few macrotasks.
 */
export async function runSession(
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

  /** The peer's side of a rekey (IK under the session's current hash), as session.ts builds ours. */
  const peerRekeyState = (initiator: boolean): HandshakeState =>
    new HandshakeState(`Noise_IK_${SUITE}`, {
      suite,
      pattern: parsePattern("IK")!,
      initiator,
      prologue: buildPrologue("tcp", REKEY_LABEL, session.hash),
      s: PEER,
      rs: initiator ? OWN.publicKey : undefined,
    });

  /** A real IK msg1 from the peer under the session's current hash (what a peer rekey sends). */
  const peerRekeyMessage = (): Uint8Array => {
    const hs = peerRekeyState(true);
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
        const hs = peerRekeyState(false);
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
      send: keyedCipher(1),
      receive: keyedCipher(2),
      handshakeHash: new Uint8Array(32).fill(9),
      remoteStatic: PEER.publicKey,
    },
    peerKey: PEER.publicKey,
    peerVersion: "peer-1",
    pairingId: new Uint8Array(16).fill(7),
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
  if (typeof inner !== "function") throw new Error("Session.dispatch was renamed: update session-script.ts");
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

/** No violation, and the session either still ran (closed by us: null) or ended with a ProtocolError. */
export function expectHealthy(r: RunResult): void {
  expect(r.violations).toEqual([]);
  if (r.closed !== null) expect(r.closed).toBeInstanceOf(ProtocolError);
}

/** A CipherState keyed with 32 bytes of `fill`: two of them with the same fill talk to each other. */
export function keyedCipher(fill: number): CipherState {
  const cs = new CipherState(suite.cipher);
  cs.initializeKey(new Uint8Array(32).fill(fill));
  return cs;
}

/** Reads with f until null or a ProtocolError; returns what came out and how it ended. */
export async function drainRecords(
  f: () => Promise<Uint8Array | null>,
): Promise<{ records: Uint8Array[]; end: string }> {
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
