/**
 * Property and fuzz tests for everything that reads untrusted bytes before a session has keys:
 * the cleartext negotiation (decodeOffer, decodeChoice), the handshake payloads
 * (decodeTimestampPayload, decodeVersionPayload), HandshakeState.readMessage at every message of
 * IK, XX and XXpsk3 (real states, real @noble crypto, both link suites), and the two handshake
 * drivers (respondHandshake, initiateHandshake) fed by a scripted link.
 *
 * Guarantees shown: a value or a ProtocolError, never another exception; an accepted value is
 * well-formed (fields checked, payload within HANDSHAKE_PAYLOAD_MAX); on an authenticated message
 * only the real one is accepted (any flip, cut or extension is refused); a failed read poisons the
 * state, so nobody can retry on a half-updated hash. The fixed cases (edge seeds, low-order
 * keys, size limits) are in core/session/messages.test.ts and core/noise/handshake-state.test.ts;
 * the real transcripts they share with this file are in test/helpers/noise-transcripts.ts.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { equalBytes } from "../../core/bytes.ts";
import { LINK_SUITES } from "../../core/noise/suites.ts";
import {
  type Established,
  initiateHandshake,
  type PeerStore,
  respondHandshake,
} from "../../core/session/handshake.ts";
import {
  decodeChoice,
  decodeOffer,
  decodeTimestampPayload,
  decodeVersionPayload,
  encodeChoice,
  encodeOffer,
  encodeTimestampPayload,
  encodeVersionPayload,
  MODES,
  REFUSALS,
} from "../../core/session/messages.ts";
import { LEGACY_PAIRING_ID } from "../../core/session/pairing-id.ts";
import { type CborValue, encodeCbor } from "../../core/wire/cbor.ts";
import { PAIRING_ID_BYTES } from "../../core/wire/limits.ts";
import {
  authenticated,
  checkRead,
  I_STATIC,
  PSK,
  R_STATIC,
  resolver,
  TARGETS,
  transcript,
} from "../helpers/noise-transcripts.ts";
import { outcome, outcomeAsync } from "../helpers/outcome.ts";
import { ScriptedLink } from "../helpers/scripted-link.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };
/** Per-test timeout that grows with the run count (real X25519: about 1 ms per DH). */
const TIMEOUT = 120_000 + RUNS * 10; // generous: a loaded CI machine must not fail a property test on time

// --- Mutations of a valid input ---

type Mutation =
  | { kind: "flip"; at: number; mask: number }
  | { kind: "cut"; at: number }
  | { kind: "extend"; tail: Uint8Array }
  | { kind: "splice"; at: number; bytes: Uint8Array };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("extend" as const), tail: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({
    kind: fc.constant("splice" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

/** Always returns bytes different from `valid` (a splice that changes nothing is made to). */
function mutate(valid: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case "flip": {
      if (valid.length === 0) return Uint8Array.of(m.mask);
      const out = valid.slice();
      out[m.at % valid.length]! ^= m.mask;
      return out;
    }
    case "cut":
      return valid.slice(0, valid.length === 0 ? 0 : m.at % valid.length);
    case "extend": {
      const out = new Uint8Array(valid.length + m.tail.length);
      out.set(valid);
      out.set(m.tail, valid.length);
      return out;
    }
    case "splice": {
      const out = valid.slice();
      const at = valid.length === 0 ? 0 : m.at % valid.length;
      const n = Math.min(m.bytes.length, out.length - at);
      out.set(m.bytes.subarray(0, n), at);
      if (n === 0 || equalBytes(out, valid)) return mutate(valid, { kind: "flip", at, mask: 1 });
      return out;
    }
  }
}

// --- Negotiation and payload decoders ---

const keyArb = fc.constantFrom("v", "mode", "suites", "suite", "refuse", "ts", "pairing", "version", "x", "");
const scalarArb: fc.Arbitrary<CborValue> = fc.oneof(
  fc.constantFrom<CborValue>(
    0,
    1,
    2,
    -1,
    true,
    false,
    null,
    "",
    ...MODES,
    ...REFUSALS,
    ...LINK_SUITES,
    "25519_ChaChaPoly_SHA256",
    "v1",
    "1.2.3+git-abc_x",
    "a".repeat(32),
    "a".repeat(33),
    "bad version!",
    "ünïcode",
    Number.MAX_SAFE_INTEGER,
    2n ** 53n,
    2n ** 64n - 1n,
    -(2n ** 64n),
  ),
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
  fc.uint8Array({ maxLength: 8 }),
  fc.uint8Array({ minLength: PAIRING_ID_BYTES - 1, maxLength: PAIRING_ID_BYTES + 1 }),
);
const valueArb: fc.Arbitrary<CborValue> = fc.oneof(
  { weight: 4, arbitrary: scalarArb },
  {
    weight: 2,
    arbitrary: fc.array(fc.oneof(fc.constantFrom<CborValue>(...LINK_SUITES), scalarArb), { maxLength: 4 }),
  },
  { weight: 1, arbitrary: fc.dictionary(keyArb, scalarArb, { maxKeys: 3 }) },
);
/** Maps whose keys and values are near misses of the real messages. */
const messageMapArb = fc.dictionary(keyArb, valueArb, { maxKeys: 4 });

const validEncodings: Uint8Array[] = [
  encodeOffer({ mode: "reconnect", suites: [...LINK_SUITES] }),
  encodeOffer({ mode: "pair-code", suites: ["25519_AESGCM_BLAKE2s"] }),
  encodeChoice({ suite: "25519_ChaChaPoly_BLAKE2s" }),
  encodeChoice({ refuse: "busy" }),
  encodeTimestampPayload({
    ts: 2n ** 64n - 1n,
    pairing: new Uint8Array(PAIRING_ID_BYTES).fill(0xff),
    version: "host-1",
  }),
  encodeTimestampPayload({ ts: 0n, pairing: LEGACY_PAIRING_ID, version: "a" }),
  encodeVersionPayload("agent-1.0"),
];

const decoderInputArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  messageMapArb.map((m) => encodeCbor(m)),
  valueArb.map((v) => encodeCbor(v)),
  fc.tuple(fc.constantFrom(...validEncodings), mutationArb).map(([v, m]) => mutate(v, m)),
);

const VERSION = /^[0-9A-Za-z.+_-]{1,32}$/;

describe("negotiation and payload decoders", () => {
  test(
    "decodeOffer: a checked offer or ProtocolError; accepted offers round-trip",
    () => {
      fc.assert(
        fc.property(decoderInputArb, (bytes) => {
          const r = outcome(() => decodeOffer(bytes));
          if ("code" in r) return;
          expect(MODES).toContain(r.ok.mode);
          expect(r.ok.suites.length).toBeGreaterThan(0);
          expect(new Set(r.ok.suites).size).toBe(r.ok.suites.length);
          for (const s of r.ok.suites) expect(LINK_SUITES).toContain(s);
          expect(decodeOffer(encodeOffer(r.ok))).toEqual(r.ok);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "decodeChoice: a known suite or a known refusal, or ProtocolError",
    () => {
      fc.assert(
        fc.property(decoderInputArb, (bytes) => {
          const r = outcome(() => decodeChoice(bytes));
          if ("code" in r) return;
          const keys = Object.keys(r.ok);
          expect(keys.length).toBe(1);
          if ("suite" in r.ok) expect(LINK_SUITES).toContain(r.ok.suite);
          else expect(REFUSALS).toContain(r.ok.refuse);
          expect(decodeChoice(encodeChoice(r.ok))).toEqual(r.ok);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "decodeTimestampPayload: a u64 bigint, a 16-byte pairing id and a short printable version, or ProtocolError",
    () => {
      fc.assert(
        fc.property(decoderInputArb, (bytes) => {
          const r = outcome(() => decodeTimestampPayload(bytes));
          if ("code" in r) return;
          expect(typeof r.ok.ts).toBe("bigint");
          expect(r.ok.ts >= 0n && r.ok.ts < 2n ** 64n).toBe(true);
          expect(r.ok.pairing).toBeInstanceOf(Uint8Array);
          expect(r.ok.pairing.length).toBe(PAIRING_ID_BYTES);
          expect(r.ok.version).toMatch(VERSION);
          expect(decodeTimestampPayload(encodeTimestampPayload(r.ok))).toEqual(r.ok);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "decodeVersionPayload: a short printable version, or ProtocolError",
    () => {
      fc.assert(
        fc.property(decoderInputArb, (bytes) => {
          const r = outcome(() => decodeVersionPayload(bytes));
          if ("code" in r) return;
          expect(r.ok).toMatch(VERSION);
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

// --- HandshakeState.readMessage at every message ---

const readInputArb = fc.oneof(
  fc.record({ kind: fc.constant("random" as const), bytes: fc.uint8Array({ maxLength: 200 }) }),
  fc.record({ kind: fc.constant("mutant" as const), mutation: mutationArb }),
);

describe("HandshakeState.readMessage on arbitrary bytes", () => {
  for (const [pattern, index] of TARGETS) {
    const who = index % 2 === 0 ? "responder" : "initiator";
    test(
      `${pattern} message ${index + 1} (${who} reads): payload or ProtocolError; only the real message passes`,
      () => {
        fc.assert(
          fc.property(fc.constantFrom(...LINK_SUITES), readInputArb, (suite, input) => {
            const valid = transcript(pattern, suite)[index]!;
            const bytes = input.kind === "random" ? input.bytes : mutate(valid, input.mutation);
            const r = checkRead(pattern, suite, index, bytes);
            if (input.kind === "mutant" && authenticated(pattern, index)) expect(r).toHaveProperty("code");
          }),
          params,
        );
      },
      TIMEOUT,
    );
  }
});

// --- The handshake drivers over a scripted link ---

const peers: PeerStore = {
  isPinned: (k) => equalBytes(k, I_STATIC.publicKey),
  acceptTimestamp: () => true,
};

function checkEstablished(e: Established): void {
  expect(MODES).toContain(e.mode);
  expect(LINK_SUITES).toContain(e.suite);
  expect(e.peerKey.length).toBe(32);
  expect(e.peerVersion).toMatch(VERSION);
}

const scriptArb = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 160 }) },
    { weight: 2, arbitrary: decoderInputArb },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...MODES), fc.subarray([...LINK_SUITES], { minLength: 1 }))
        .map(([mode, suites]) => encodeOffer({ mode, suites })),
    },
    { weight: 1, arbitrary: fc.constantFrom(...LINK_SUITES).map((suite) => encodeChoice({ suite })) },
  ),
  { maxLength: 4 },
);

describe("handshake drivers on a scripted link", () => {
  test(
    "respondHandshake: Established or ProtocolError, whatever the initiator sends",
    async () => {
      await fc.assert(
        fc.asyncProperty(scriptArb, fc.boolean(), async (script, allowCode) => {
          const link = new ScriptedLink(script);
          const r = await outcomeAsync(() =>
            respondHandshake({
              link,
              resolver,
              staticKey: R_STATIC,
              version: "agent-1",
              suites: [...LINK_SUITES],
              peers,
              pairing: { token: PSK, allowCode },
            }),
          );
          if ("ok" in r) checkEstablished(r.ok);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  test(
    "initiateHandshake: Established or ProtocolError, whatever the responder sends",
    async () => {
      await fc.assert(
        fc.asyncProperty(scriptArb, fc.constantFrom(...MODES), async (script, mode) => {
          const link = new ScriptedLink(script);
          const r = await outcomeAsync(() =>
            initiateHandshake({
              link,
              resolver,
              staticKey: I_STATIC,
              version: "host-1",
              suites: [...LINK_SUITES],
              mode,
              responderKey: R_STATIC.publicKey,
              token: PSK,
              timestamp: () => 5n,
            }),
          );
          if ("ok" in r) checkEstablished(r.ok);
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

// --- The pairing id in IK message 1 (core/session/pairing-id.ts) ---

describe("IK message 1 and the pairing id", () => {
  /** A real offer and IK message 1 from I_STATIC naming `pairing`, as captured off the wire. */
  async function capture(suite: (typeof LINK_SUITES)[number], pairing: Uint8Array, ts: bigint) {
    const link = new ScriptedLink([encodeChoice({ suite })]);
    await outcomeAsync(() =>
      initiateHandshake({
        link,
        resolver,
        staticKey: I_STATIC,
        version: "host-1",
        suites: [suite],
        mode: "reconnect",
        responderKey: R_STATIC.publicKey,
        pairingId: pairing,
        timestamp: () => ts,
      }),
    );
    return link.sent;
  }

  test(
    "a message 1 naming another pairing than the pinned one is refused with handshake-replay and records nothing",
    async () => {
      const idArb = fc.uint8Array({ minLength: PAIRING_ID_BYTES, maxLength: PAIRING_ID_BYTES });
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...LINK_SUITES),
          idArb,
          idArb,
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          fc.boolean(),
          async (suite, pinnedId, otherId, ts, same) => {
            const sentId = same ? pinnedId : otherId;
            const recorded: bigint[] = [];
            const store: PeerStore = {
              isPinned: (k) => equalBytes(k, I_STATIC.publicKey),
              acceptTimestamp: (_k, t, id) => {
                if (!equalBytes(id, pinnedId)) return false;
                recorded.push(t);
                return true;
              },
            };
            const wire = await capture(suite, sentId, ts);
            expect(wire).toHaveLength(2);
            const link = new ScriptedLink(wire);
            const r = await outcomeAsync(() =>
              respondHandshake({
                link,
                resolver,
                staticKey: R_STATIC,
                version: "agent-1",
                suites: [suite],
                peers: store,
                pairing: {},
              }),
            );
            if (equalBytes(sentId, pinnedId)) {
              expect(r).toHaveProperty("ok");
              expect(recorded).toEqual([ts]);
            } else {
              expect(r).toEqual({ code: "handshake-replay" });
              expect(recorded).toEqual([]);
              expect(link.sent).toHaveLength(1); // the choice; no message 2
            }
          },
        ),
        { numRuns: Math.max(20, Math.floor(RUNS / 10)) },
      );
    },
    TIMEOUT,
  );
});
