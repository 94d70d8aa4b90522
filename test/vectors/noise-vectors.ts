/**
 * Runs Noise test vectors in the cacophony/snow JSON format (see shared/vectors/README.md):
 * message i goes initiator -> responder when i is even (always, for one-way patterns); the
 * sender's output must equal `ciphertext`, the receiver's `payload`, and h `handshake_hash`.
 * Vectors we do not implement (448, fallback, hybrid, unknown patterns) are skipped, not failed.
 */
import type { CipherState } from "../../core/noise/cipher-state.ts";
import type { CipherFunctions, DhFunctions } from "../../core/noise/crypto.ts";
import { HandshakeState } from "../../core/noise/handshake-state.ts";
import { parseProtocolName } from "../../core/noise/patterns.ts";
import { makeResolver, resolveSuite } from "../../core/noise/suites.ts";

export interface NoiseVector {
  protocol_name: string;
  init_prologue: string;
  init_psks?: string[];
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  resp_prologue: string;
  resp_psks?: string[];
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  handshake_hash?: string;
  fail?: boolean;
  fallback?: boolean;
  fallback_pattern?: string;
  hybrid?: string;
  messages: { payload: string; ciphertext: string }[];
}

export type VectorOutcome =
  | { status: "passed" }
  | { status: "skipped"; reason: string }
  | { status: "failed"; reason: string };

const hex = (s: string | undefined): Uint8Array | undefined =>
  s === undefined ? undefined : Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export function runVector(
  v: NoiseVector,
  nativeCiphers: readonly CipherFunctions[] = [],
  nativeDh: DhFunctions | null = null,
): VectorOutcome {
  if (v.fallback || v.fallback_pattern || v.hybrid || v.fail)
    return { status: "skipped", reason: "fallback/hybrid/fail" };
  const protocol = parseProtocolName(v.protocol_name);
  if (!protocol) return { status: "skipped", reason: "pattern not implemented" };
  const suite = resolveSuite(
    makeResolver(nativeCiphers, nativeDh),
    protocol.dh,
    protocol.cipher,
    protocol.hash,
  );
  if (!suite) return { status: "skipped", reason: "algorithm not implemented" };
  const keyPair = (priv: string | undefined) =>
    priv === undefined ? undefined : suite.dh.keyPairFromPrivate(hex(priv)!);

  try {
    const initiator = new HandshakeState(v.protocol_name, {
      suite,
      pattern: protocol.pattern,
      initiator: true,
      prologue: hex(v.init_prologue)!,
      s: keyPair(v.init_static),
      rs: hex(v.init_remote_static),
      psks: (v.init_psks ?? []).map((p) => hex(p)!),
      fixedEphemeralForTestingOnly: keyPair(v.init_ephemeral),
    });
    const responder = new HandshakeState(v.protocol_name, {
      suite,
      pattern: protocol.pattern,
      initiator: false,
      prologue: hex(v.resp_prologue)!,
      s: keyPair(v.resp_static),
      rs: hex(v.resp_remote_static),
      psks: (v.resp_psks ?? []).map((p) => hex(p)!),
      fixedEphemeralForTestingOnly: keyPair(v.resp_ephemeral),
    });
    let transport: { i: [CipherState, CipherState]; r: [CipherState, CipherState] } | null = null;
    for (const [index, message] of v.messages.entries()) {
      const fromInitiator = protocol.pattern.oneWay || index % 2 === 0;
      const payload = hex(message.payload)!;
      let sent: Uint8Array;
      let received: Uint8Array;
      if (!transport) {
        const [writer, reader] = fromInitiator ? [initiator, responder] : [responder, initiator];
        sent = writer.writeMessage(payload);
        received = reader.readMessage(sent);
        if (initiator.isComplete && responder.isComplete) {
          const i = initiator.completed;
          const r = responder.completed;
          if (v.handshake_hash && toHex(i.handshakeHash) !== v.handshake_hash)
            return { status: "failed", reason: "handshake_hash differs" };
          if (toHex(i.handshakeHash) !== toHex(r.handshakeHash))
            return { status: "failed", reason: "initiator and responder h differ" };
          transport = { i: [i.send, i.receive], r: [r.send, r.receive] };
        }
      } else {
        const [sender, receiver] = fromInitiator
          ? [transport.i[0], transport.r[1]]
          : [transport.r[0], transport.i[1]];
        sent = sender.encryptWithAd(new Uint8Array(0), payload);
        received = receiver.decryptWithAd(new Uint8Array(0), sent);
      }
      if (toHex(sent) !== message.ciphertext)
        return { status: "failed", reason: `message ${index}: ciphertext differs` };
      if (toHex(received) !== message.payload)
        return { status: "failed", reason: `message ${index}: payload differs` };
    }
    return { status: "passed" };
  } catch (error) {
    return { status: "failed", reason: `threw ${(error as Error).message}` };
  }
}
