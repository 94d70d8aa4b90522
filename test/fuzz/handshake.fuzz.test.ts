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
 * state, so nobody can retry on a half-updated hash.
 *
 * Runs: FUZZ_RUNS (default 300); `bun run fuzz` uses 20000.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { AssertionError, ProtocolError } from "../../core/errors.ts";
import type { KeyPair } from "../../core/noise/crypto.ts";
import { dh25519 } from "../../core/noise/crypto-noble.ts";
import { HandshakeState } from "../../core/noise/handshake-state.ts";
import { parsePattern } from "../../core/noise/patterns.ts";
import { LINK_SUITES, type LinkSuiteName, makeResolver, resolveLinkSuite } from "../../core/noise/suites.ts";
import {
  type Established,
  initiateHandshake,
  type PeerStore,
  respondHandshake,
} from "../../core/session/handshake.ts";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
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
import type { RecordLink } from "../../core/session/record-link.ts";
import { type CborValue, encodeCbor } from "../../core/wire/cbor.ts";
import { HANDSHAKE_PAYLOAD_MAX, NOISE_MAX_MESSAGE } from "../../core/wire/limits.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };
/** Per-test timeout that grows with the run count (real X25519: about 1 ms per DH). */
const TIMEOUT = 5000 + RUNS * 10;

/** Runs f; a ProtocolError becomes its code, any other exception fails the property. */
function outcome<T>(f: () => T): { ok: T } | { code: string } {
  try {
    return { ok: f() };
  } catch (e) {
    if (e instanceof ProtocolError) return { code: e.code };
    throw e;
  }
}

async function outcomeAsync<T>(f: () => Promise<T>): Promise<{ ok: T } | { code: string }> {
  try {
    return { ok: await f() };
  } catch (e) {
    if (e instanceof ProtocolError) return { code: e.code };
    throw e;
  }
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Deterministic filler: big inputs cost no per-byte generation. */
function filled(n: number, seed = 7): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

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

const keyArb = fc.constantFrom("v", "mode", "suites", "suite", "refuse", "ts", "version", "x", "");
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
  encodeTimestampPayload(2n ** 64n - 1n, "host-1"),
  encodeTimestampPayload(0n, "a"),
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
    "decodeTimestampPayload: a u64 bigint and a short printable version, or ProtocolError",
    () => {
      fc.assert(
        fc.property(decoderInputArb, (bytes) => {
          const r = outcome(() => decodeTimestampPayload(bytes));
          if ("code" in r) return;
          expect(typeof r.ok.ts).toBe("bigint");
          expect(r.ok.ts >= 0n && r.ok.ts < 2n ** 64n).toBe(true);
          expect(r.ok.version).toMatch(VERSION);
          expect(decodeTimestampPayload(encodeTimestampPayload(r.ok.ts, r.ok.version))).toEqual(r.ok);
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

  test("edge seeds: empty, every single byte, the size limit and one over", () => {
    const decoders = [decodeOffer, decodeChoice, decodeTimestampPayload, decodeVersionPayload];
    const seeds: Uint8Array[] = [new Uint8Array(0)];
    for (let b = 0; b < 256; b++) seeds.push(Uint8Array.of(b));
    // {version: "<text>"} padded to exactly the limit, and one byte more.
    const atLimit = (extra: number) => {
      for (let n = HANDSHAKE_PAYLOAD_MAX - 20; ; n++) {
        const bytes = encodeCbor({ version: "a".repeat(n) });
        if (bytes.length === HANDSHAKE_PAYLOAD_MAX + extra) return bytes;
      }
    };
    seeds.push(atLimit(0), atLimit(1), filled(HANDSHAKE_PAYLOAD_MAX + 1), filled(NOISE_MAX_MESSAGE));
    for (const bytes of seeds) for (const decode of decoders) outcome(() => decode(bytes));
    // Both are well-formed CBOR and fail the version charset; the longer one fails earlier, on size.
    expect(outcome(() => decodeVersionPayload(atLimit(0)))).toEqual({ code: "handshake-malformed" });
    expect(() => decodeVersionPayload(atLimit(1))).toThrow("too long");
    expect(() => decodeVersionPayload(atLimit(0))).toThrow("version");
  });

  test("duplicate suites, unknown suites, extra fields and wrong versions are refused", () => {
    const bad: CborValue[] = [
      { v: 1, mode: "reconnect", suites: [LINK_SUITES[0], LINK_SUITES[0]] },
      { v: 1, mode: "reconnect", suites: ["25519_ChaChaPoly_SHA256"] },
      { v: 1, mode: "reconnect", suites: [] },
      { v: 1, mode: "reconnect", suites: [...LINK_SUITES, "x"] },
      { v: 2, mode: "reconnect", suites: [LINK_SUITES[0]] },
      { v: 1, mode: "pair", suites: [LINK_SUITES[0]] },
      { v: 1, mode: "reconnect", suites: [LINK_SUITES[0]], x: 0 },
    ];
    for (const v of bad) expect(outcome(() => decodeOffer(encodeCbor(v)))).toHaveProperty("code");
    expect(outcome(() => decodeChoice(encodeCbor({ suite: LINK_SUITES[0], refuse: "busy" })))).toHaveProperty(
      "code",
    );
    expect(outcome(() => decodeTimestampPayload(encodeCbor({ ts: -1, version: "a" })))).toHaveProperty(
      "code",
    );
  });
});

// --- HandshakeState.readMessage at every message ---

const resolver = makeResolver();
const PROLOGUE = new TextEncoder().encode("fuzz prologue");
const PSK = filled(32, 99);
const I_STATIC = generateStaticKeyPair();
const R_STATIC = generateStaticKeyPair();
const I_EPHEMERAL = dh25519.generateKeyPair();
const R_EPHEMERAL = dh25519.generateKeyPair();

type PatternName = "IK" | "XX" | "XXpsk3";
const PATTERNS: Record<PatternName, number> = { IK: 2, XX: 3, XXpsk3: 3 };

function payloadFor(pattern: PatternName, index: number): Uint8Array {
  if (pattern === "IK" && index === 0) return encodeTimestampPayload(1n, "host-1");
  if (pattern !== "IK" && index === 0) return new Uint8Array(0);
  return encodeVersionPayload(index % 2 ? "agent-1" : "host-1");
}

function newState(pattern: PatternName, suiteName: LinkSuiteName, initiator: boolean): HandshakeState {
  return new HandshakeState(`Noise_${pattern}_${suiteName}`, {
    suite: resolveLinkSuite(resolver, suiteName),
    pattern: parsePattern(pattern)!,
    initiator,
    prologue: PROLOGUE,
    s: initiator ? I_STATIC : R_STATIC,
    rs: initiator && pattern === "IK" ? R_STATIC.publicKey : undefined,
    psks: pattern === "XXpsk3" ? [PSK] : [],
    fixedEphemeralForTestingOnly: initiator ? I_EPHEMERAL : R_EPHEMERAL,
  });
}

/** The whole real handshake, once per pattern and suite (fixed ephemerals make it repeatable). */
const transcripts = new Map<string, Uint8Array[]>();
function transcript(pattern: PatternName, suite: LinkSuiteName): Uint8Array[] {
  const key = `${pattern}/${suite}`;
  let t = transcripts.get(key);
  if (!t) {
    const states = [newState(pattern, suite, true), newState(pattern, suite, false)];
    t = [];
    for (let i = 0; i < PATTERNS[pattern]; i++) {
      const message = states[i % 2]!.writeMessage(payloadFor(pattern, i));
      expect(states[(i + 1) % 2]!.readMessage(message)).toEqual(payloadFor(pattern, i));
      t.push(message);
    }
    expect(states[0]!.completed.handshakeHash).toEqual(states[1]!.completed.handshakeHash);
    transcripts.set(key, t);
  }
  return t;
}

/** A fresh state of the side that reads message `index`, replayed up to just before it. */
function readerAt(pattern: PatternName, suite: LinkSuiteName, index: number): HandshakeState {
  const t = transcript(pattern, suite);
  const reader = newState(pattern, suite, index % 2 === 1);
  for (let i = 0; i < index; i++) {
    // The reader writes the odd/even messages of its own side: same fixed ephemeral, same bytes.
    if (reader.isMyTurn) expect(reader.writeMessage(payloadFor(pattern, i))).toEqual(t[i]!);
    else reader.readMessage(t[i]!);
  }
  return reader;
}

/** XX message 1 is `-> e` with a cleartext payload: nothing in it is authenticated. */
const authenticated = (pattern: PatternName, index: number) => !(pattern === "XX" && index === 0);

const TARGETS: [PatternName, number][] = [
  ["IK", 0],
  ["IK", 1],
  ["XX", 0],
  ["XX", 1],
  ["XX", 2],
  ["XXpsk3", 0],
  ["XXpsk3", 1],
  ["XXpsk3", 2],
];

const readInputArb = fc.oneof(
  fc.record({ kind: fc.constant("random" as const), bytes: fc.uint8Array({ maxLength: 200 }) }),
  fc.record({ kind: fc.constant("mutant" as const), mutation: mutationArb }),
);

/** Reads `bytes` at message `index` and checks the guarantees; returns the outcome. */
function checkRead(pattern: PatternName, suite: LinkSuiteName, index: number, bytes: Uint8Array) {
  const reader = readerAt(pattern, suite, index);
  const valid = transcript(pattern, suite)[index]!;
  const r = outcome(() => reader.readMessage(bytes));
  if ("ok" in r) {
    expect(r.ok.length).toBeLessThanOrEqual(HANDSHAKE_PAYLOAD_MAX);
    if (authenticated(pattern, index)) expect(equalBytes(bytes, valid)).toBe(true);
  } else {
    // Poisoned: the real message cannot be tried afterwards on the half-updated state.
    expect(() => reader.readMessage(valid)).toThrow(AssertionError);
  }
  return r;
}

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

  test("edge seeds at every message: empty, short, low-order keys, size limits", () => {
    const lowOrder = [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))];
    for (const suite of LINK_SUITES) {
      for (const [pattern, index] of TARGETS) {
        const valid = transcript(pattern, suite)[index]!;
        expect(checkRead(pattern, suite, index, valid)).toEqual({ ok: payloadFor(pattern, index) });
        const seeds = [
          new Uint8Array(0),
          Uint8Array.of(0),
          filled(31),
          valid.subarray(0, valid.length - 1),
          ...lowOrder.map((e) => Uint8Array.from([...e, ...valid.subarray(32)])),
          filled(NOISE_MAX_MESSAGE),
          filled(NOISE_MAX_MESSAGE + 1),
        ];
        for (const bytes of seeds) {
          const r = checkRead(pattern, suite, index, bytes);
          if (authenticated(pattern, index)) expect(r).toHaveProperty("code");
        }
        expect(checkRead(pattern, suite, index, filled(NOISE_MAX_MESSAGE + 1))).toEqual({
          code: "handshake-malformed",
        });
      }
    }
  });

  test("a low-order ephemeral is refused where it is used in a DH", () => {
    const zeroE = Uint8Array.from([...new Uint8Array(32), ...filled(64)]);
    // IK message 1: es with the responder's static.
    expect(checkRead("IK", LINK_SUITES[0], 0, zeroE)).toEqual({ code: "handshake-malformed" });
    // XX message 2: ee with the initiator's ephemeral.
    expect(checkRead("XX", LINK_SUITES[0], 1, zeroE)).toEqual({ code: "handshake-malformed" });
  });

  test("XX message 1 (cleartext payload) accepts at most HANDSHAKE_PAYLOAD_MAX payload bytes", () => {
    const e = R_EPHEMERAL.publicKey;
    const withPayload = (n: number) => Uint8Array.from([...e, ...filled(n)]);
    expect(checkRead("XX", LINK_SUITES[0], 0, withPayload(0))).toEqual({ ok: new Uint8Array(0) });
    expect(checkRead("XX", LINK_SUITES[0], 0, withPayload(HANDSHAKE_PAYLOAD_MAX))).toHaveProperty("ok");
    for (const n of [HANDSHAKE_PAYLOAD_MAX + 1, HANDSHAKE_PAYLOAD_MAX + 16, HANDSHAKE_PAYLOAD_MAX + 17]) {
      expect(checkRead("XX", LINK_SUITES[0], 0, withPayload(n))).toEqual({ code: "handshake-malformed" });
    }
  });
});

// --- The handshake drivers over a scripted link ---

/** A RecordLink that plays back given handshake messages, then reports the link lost. */
class ScriptedLink implements RecordLink {
  readonly transport = "tcp";
  readonly maxRecord = 65519;
  readonly recordsSinceKey = 0;
  readonly sent: Uint8Array[] = [];
  constructor(private readonly script: Uint8Array[]) {}
  async sendHandshake(message: Uint8Array): Promise<void> {
    this.sent.push(message);
  }
  async recvHandshake(): Promise<Uint8Array> {
    const next = this.script.shift();
    if (next === undefined) throw new ProtocolError("link-lost", "closed during handshake");
    return next;
  }
  setSendKey(): void {}
  setRecvKey(): void {}
  send(): Promise<void> {
    throw new Error("not in a handshake");
  }
  recv(): Promise<Uint8Array | null> {
    throw new Error("not in a handshake");
  }
  close(): void {}
}

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

// Keys used above are fixed for the whole file; make sure none of them is low-order by accident.
test("fixture keys are distinct", () => {
  const keys: KeyPair[] = [I_STATIC, R_STATIC, I_EPHEMERAL, R_EPHEMERAL];
  expect(new Set(keys.map((k) => k.publicKey.join())).size).toBe(4);
});
