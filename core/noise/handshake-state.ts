/**
 * HandshakeState (Noise spec rev 34 §5.3, psk rules §9.2): runs one handshake pattern.
 *
 * Must never: continue after an error (a failed read poisons the state, so a caller cannot retry
 * with a half-updated hash), read past a message's declared structure, or let the peer choose the
 * pattern. Peer faults are ProtocolError; misuse by our own code is an assert.
 */
import { concatBytes } from "../bytes.ts";
import { assert, ProtocolError } from "../errors.ts";
import { HANDSHAKE_PAYLOAD_MAX, NOISE_MAX_MESSAGE } from "../wire/limits.ts";
import type { CipherState } from "./cipher-state.ts";
import type { KeyPair, NoiseSuite } from "./crypto.ts";
import { type HandshakePattern, isPskPattern, type Token } from "./patterns.ts";
import { SymmetricState } from "./symmetric-state.ts";

export interface HandshakeOptions {
  readonly suite: NoiseSuite;
  readonly pattern: HandshakePattern;
  readonly initiator: boolean;
  readonly prologue: Uint8Array;
  /** Local static key pair (s). */
  readonly s?: KeyPair;
  /** Remote static public key known in advance (rs), e.g. the pinned responder key for IK. */
  readonly rs?: Uint8Array;
  /** Pre-shared keys, consumed in order by the psk tokens (32 bytes each). */
  readonly psks?: readonly Uint8Array[];
  /** Fixed ephemeral for the test vectors ONLY; never in production. */
  readonly fixedEphemeralForTestingOnly?: KeyPair;
}

export interface HandshakeResult {
  /** Encrypts what we send. */
  readonly send: CipherState;
  /** Decrypts what we receive. */
  readonly receive: CipherState;
  readonly handshakeHash: Uint8Array;
  readonly remoteStatic: Uint8Array | null;
}

export class HandshakeState {
  private readonly ss: SymmetricState;
  private readonly suite: NoiseSuite;
  private readonly pattern: HandshakePattern;
  private readonly initiator: boolean;
  private readonly s: KeyPair | undefined;
  private e: KeyPair | undefined;
  private rs: Uint8Array | undefined;
  private re: Uint8Array | undefined;
  private readonly psks: Uint8Array[];
  private readonly isPsk: boolean;
  private messageIndex = 0;
  private poisoned = false;
  private result: HandshakeResult | null = null;

  /** Initialize() of §5.3: protocol name, prologue, then the pre-message keys. */
  constructor(protocolName: string, options: HandshakeOptions) {
    this.suite = options.suite;
    this.pattern = options.pattern;
    this.initiator = options.initiator;
    this.s = options.s;
    this.e = options.fixedEphemeralForTestingOnly;
    this.rs = options.rs;
    this.psks = [...(options.psks ?? [])];
    this.isPsk = isPskPattern(this.pattern);
    for (const psk of this.psks) assert(psk.length === 32, "psk must be 32 bytes");
    this.ss = new SymmetricState(this.suite.hash, this.suite.cipher, protocolName);
    this.ss.mixHash(options.prologue);
    // Pre-messages: the initiator's first, then the responder's (§7.1).
    this.mixPreMessage(this.pattern.initiatorPre, this.initiator);
    this.mixPreMessage(this.pattern.responderPre, !this.initiator);
  }

  private mixPreMessage(tokens: readonly Token[], mine: boolean): void {
    for (const token of tokens) {
      const key = token === "e" ? (mine ? this.e?.publicKey : this.re) : mine ? this.s?.publicKey : this.rs;
      assert(key !== undefined, `pre-message key ${token} missing`);
      this.ss.mixHash(key);
      // A pre-message ephemeral also keys the state in psk handshakes (§9.2).
      if (token === "e" && this.isPsk) this.ss.mixKey(key);
    }
  }

  get isComplete(): boolean {
    return this.result !== null;
  }

  /** True when the next message is ours to write. */
  get isMyTurn(): boolean {
    if (this.pattern.oneWay) return this.initiator;
    return (this.messageIndex % 2 === 0) === this.initiator;
  }

  get handshakeHash(): Uint8Array {
    return this.ss.handshakeHash;
  }

  /** The peer's static key, once it has been received (or known in advance). */
  get remoteStatic(): Uint8Array | undefined {
    return this.rs;
  }

  /** The completed handshake; asserts it is complete. */
  get completed(): HandshakeResult {
    assert(this.result !== null, "handshake not complete");
    return this.result;
  }

  writeMessage(payload: Uint8Array): Uint8Array {
    this.checkUsable(true);
    assert(payload.length <= HANDSHAKE_PAYLOAD_MAX, "handshake payload too large");
    const parts: Uint8Array[] = [];
    try {
      for (const token of this.pattern.messages[this.messageIndex]!) {
        switch (token) {
          case "e": {
            this.e ??= this.suite.dh.generateKeyPair();
            parts.push(this.e.publicKey);
            this.ss.mixHash(this.e.publicKey);
            if (this.isPsk) this.ss.mixKey(this.e.publicKey);
            break;
          }
          case "s":
            assert(this.s !== undefined, "pattern sends s but no static key given");
            parts.push(this.ss.encryptAndHash(this.s.publicKey));
            break;
          case "psk":
            this.ss.mixKeyAndHash(this.nextPsk());
            break;
          default:
            this.mixDh(token);
        }
      }
      parts.push(this.ss.encryptAndHash(payload));
    } catch (error) {
      this.poisoned = true;
      throw error;
    }
    this.advance();
    return concatBytes(parts);
  }

  /** Returns the decrypted payload. Throws ProtocolError on a malformed or forged message. */
  readMessage(message: Uint8Array): Uint8Array {
    this.checkUsable(false);
    try {
      if (message.length > NOISE_MAX_MESSAGE) throw new ProtocolError("handshake-malformed", "too long");
      const dhlen = this.suite.dh.DHLEN;
      let offset = 0;
      const take = (n: number): Uint8Array => {
        if (message.length - offset < n) throw new ProtocolError("handshake-malformed", "too short");
        const bytes = message.subarray(offset, offset + n);
        offset += n;
        return bytes;
      };
      for (const token of this.pattern.messages[this.messageIndex]!) {
        switch (token) {
          case "e": {
            this.re = take(dhlen).slice();
            this.ss.mixHash(this.re);
            if (this.isPsk) this.ss.mixKey(this.re);
            break;
          }
          case "s": {
            // 16 more bytes for the tag once the state is keyed (§7.3).
            const sealed = take(this.ss.hasKey() ? dhlen + 16 : dhlen);
            this.rs = this.ss.decryptAndHash(sealed).slice();
            break;
          }
          case "psk":
            this.ss.mixKeyAndHash(this.nextPsk());
            break;
          default:
            this.mixDh(token);
        }
      }
      const rest = message.subarray(offset);
      // The tag is there only once the state is keyed (XX message 1 carries a cleartext payload).
      if (rest.length > HANDSHAKE_PAYLOAD_MAX + (this.ss.hasKey() ? 16 : 0)) {
        throw new ProtocolError("handshake-malformed", "payload");
      }
      const payload = this.ss.decryptAndHash(rest);
      this.advance();
      return payload;
    } catch (error) {
      this.poisoned = true;
      if (error instanceof ProtocolError) {
        throw error.code === "decrypt" ? new ProtocolError("handshake-decrypt") : error;
      }
      throw error;
    }
  }

  private mixDh(token: "ee" | "es" | "se" | "ss" | Token): void {
    // First letter names the initiator's key, second the responder's (§7.3).
    const [iKey, rKey] = [token[0], token[1]];
    const localName = this.initiator ? iKey : rKey;
    const remoteName = this.initiator ? rKey : iKey;
    const local = localName === "e" ? this.e : this.s;
    const remote = remoteName === "e" ? this.re : this.rs;
    assert(local !== undefined, `missing local key for ${token}`);
    if (remote === undefined) throw new ProtocolError("handshake-malformed", "missing remote key");
    let shared: Uint8Array;
    try {
      shared = this.suite.dh.dh(local.privateKey, remote);
    } catch {
      throw new ProtocolError("handshake-malformed", "invalid public key");
    }
    this.ss.mixKey(shared);
  }

  private nextPsk(): Uint8Array {
    const psk = this.psks.shift();
    assert(psk !== undefined, "pattern needs a psk but none was given");
    return psk;
  }

  private checkUsable(writing: boolean): void {
    assert(!this.poisoned, "HandshakeState used after an error");
    assert(this.result === null, "handshake already complete");
    assert(this.isMyTurn === writing, writing ? "not our turn to write" : "not our turn to read");
  }

  private advance(): void {
    this.messageIndex += 1;
    if (this.messageIndex < this.pattern.messages.length) return;
    const [c1, c2] = this.ss.split();
    this.result = {
      send: this.initiator ? c1 : c2,
      receive: this.initiator ? c2 : c1,
      handshakeHash: this.ss.handshakeHash,
      remoteStatic: this.rs ?? null,
    };
  }
}
