/**
 * A man in the middle of a code pairing, for tests (docs/threat-model-pairing.md). It plays the
 * host toward a device over any RecordLink with the grinding strategy of issue 16: it fixes its
 * ephemeral key, receives the device's message 2, and then tries as many message 3 variants as
 * it likes offline (a different nonce in the payload each time: each gives a different handshake
 * hash h), before it sends the one it picked. Message 3's tokens (s, se) are the same for every
 * variant, so one variant costs one AEAD and one hash over the payload, as an optimised
 * attacker's would; the variant sent is rebuilt by the real Noise code and compared.
 *
 * `v1Code` is the version 1 derivation (a code from h alone), kept here only to show what the
 * grinding did to it; no product code computes it any more.
 * Must never: be imported by product code.
 */
import type { KeyPair, NoiseSuite } from "../../core/noise/crypto.ts";
import { blake2sHash } from "../../core/noise/crypto-noble.ts";
import { HandshakeState } from "../../core/noise/handshake-state.ts";
import { parsePattern } from "../../core/noise/patterns.ts";
import { type CryptoResolver, type LinkSuiteName, resolveLinkSuite } from "../../core/noise/suites.ts";
import type { StaticKeyPair } from "../../core/session/key-text.ts";
import {
  buildPrologue,
  decodeChoice,
  decodePairingPayload,
  encodeOffer,
  encodePairingPayload,
  RecordKind,
} from "../../core/session/messages.ts";
import { pairingCode } from "../../core/session/pairing-code.ts";
import type { RecordLink } from "../../core/session/record-link.ts";

const V1_LABEL = new TextEncoder().encode("qubes-air pairing code");

/** The removed version 1 code: BLAKE2s("qubes-air pairing code" || h) mod 10^6. */
export function v1Code(h: Uint8Array): string {
  const d = blake2sHash.hash(V1_LABEL, h);
  return (new DataView(d.buffer, d.byteOffset, 8).getBigUint64(0, false) % 1_000_000n)
    .toString()
    .padStart(6, "0");
}

/** One message 3 the attacker could send, and the h it gives, known before sending. */
export interface Candidate {
  readonly nonce: Uint8Array;
  readonly msg3: Uint8Array;
  readonly h: Uint8Array;
}

/** Private state of the core Noise objects, read as the attacker's own implementation has it. */
interface Inside {
  ss: { encryptAndHash(p: Uint8Array): Uint8Array; mixKey(k: Uint8Array): void; handshakeHash: Uint8Array };
}

export class DeviceLegAttacker {
  /** The state after message 3's tokens (s, se): the same for every payload. */
  private readonly encryptedStatic: Uint8Array;
  private readonly hMid: Uint8Array;
  private readonly key: Uint8Array;

  private constructor(
    private readonly link: RecordLink,
    private readonly suite: NoiseSuite,
    private readonly protocolName: string,
    private readonly prologue: Uint8Array,
    private readonly staticKey: StaticKeyPair,
    private readonly ephemeral: KeyPair,
    private readonly msg2: Uint8Array,
    /** The device's commitment to its nonce, from message 2. */
    readonly commitment: Uint8Array,
  ) {
    // Message 3 is  s, se, payload: everything but the payload's ciphertext is fixed, so the
    // attacker runs the tokens once and then only encrypts and hashes each payload.
    const hs = this.replayToMessage3();
    const ss = (hs as unknown as Inside).ss;
    this.encryptedStatic = ss.encryptAndHash(staticKey.publicKey);
    ss.mixKey(suite.dh.dh(staticKey.privateKey, msg2.subarray(0, suite.dh.DHLEN)));
    this.hMid = ss.handshakeHash;
    this.key = (ss as unknown as { cs: { k: Uint8Array } }).cs.k;
  }

  /** Offer, choice, message 1, message 2: everything up to the attacker's free choice. */
  static async start(
    link: RecordLink,
    resolver: CryptoResolver,
    staticKey: StaticKeyPair,
    suites: readonly LinkSuiteName[],
  ): Promise<DeviceLegAttacker> {
    const offer = encodeOffer({ mode: "pair-code", suites });
    await link.sendHandshake(offer);
    const choiceBytes = await link.recvHandshake();
    const choice = decodeChoice(choiceBytes);
    if (!("suite" in choice)) throw new Error(`device refused: ${choice.refuse}`);
    const suite = resolveLinkSuite(resolver, choice.suite);
    const ephemeral = suite.dh.generateKeyPair();
    const name = `Noise_XX_${choice.suite}`;
    const prologue = buildPrologue(link.transport, offer, choiceBytes);
    const hs = DeviceLegAttacker.state(suite, name, prologue, staticKey, ephemeral);
    await link.sendHandshake(hs.writeMessage(new Uint8Array(0)));
    const msg2 = await link.recvHandshake();
    const { value } = decodePairingPayload(hs.readMessage(msg2), "commit");
    return new DeviceLegAttacker(link, suite, name, prologue, staticKey, ephemeral, msg2, value);
  }

  private static state(
    suite: NoiseSuite,
    name: string,
    prologue: Uint8Array,
    s: StaticKeyPair,
    e: KeyPair,
  ): HandshakeState {
    return new HandshakeState(name, {
      suite,
      pattern: parsePattern("XX")!,
      initiator: true,
      prologue,
      s,
      fixedEphemeralForTestingOnly: e,
    });
  }

  /** A fresh initiator state that has written message 1 and read message 2 (the slow way). */
  private replayToMessage3(): HandshakeState {
    const hs = DeviceLegAttacker.state(
      this.suite,
      this.protocolName,
      this.prologue,
      this.staticKey,
      this.ephemeral,
    );
    hs.writeMessage(new Uint8Array(0));
    hs.readMessage(this.msg2);
    return hs;
  }

  /** One offline try: message 3 with this nonce (or this raw payload), and the h it gives. */
  candidate(nonce: Uint8Array, payload?: Uint8Array): Candidate {
    const ct = this.suite.cipher.encrypt(
      this.key,
      0n,
      this.hMid,
      payload ?? encodePairingPayload("mitm-1", "nonce", nonce),
    );
    const msg3 = new Uint8Array(this.encryptedStatic.length + ct.length);
    msg3.set(this.encryptedStatic);
    msg3.set(ct, this.encryptedStatic.length);
    return { nonce, msg3, h: this.suite.hash.hash(this.hMid, ct) };
  }

  /** Sends message 3 and nothing else. */
  sendMessage3(c: Candidate): Promise<void> {
    return this.link.sendHandshake(c.msg3);
  }

  /** Sends the chosen message 3; resolves with the device's revealed nonce (its first record). */
  async send(c: Candidate): Promise<Uint8Array> {
    // The real Noise code must produce the same bytes and h as the shortcut (else the test lies).
    const hs = this.replayToMessage3();
    const msg3 = hs.writeMessage(encodePairingPayload("mitm-1", "nonce", c.nonce));
    const result = hs.completed;
    if (
      !Buffer.from(msg3).equals(Buffer.from(c.msg3)) ||
      !Buffer.from(result.handshakeHash).equals(Buffer.from(c.h))
    )
      throw new Error("the grinding shortcut disagrees with the Noise code");
    await this.link.sendHandshake(msg3);
    this.link.setSendKey(result.send);
    this.link.setRecvKey(result.receive);
    const record = await this.link.recv();
    if (record === null || record[0] !== RecordKind.PAIR_REVEAL) throw new Error("no reveal from the device");
    return record.slice(1);
  }

  /** What the device shows for this candidate once its nonce is known (after the reveal). */
  static codeAfterReveal(c: Candidate, deviceNonce: Uint8Array): string {
    return pairingCode(c.h, deviceNonce, c.nonce);
  }
}
