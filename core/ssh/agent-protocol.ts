/**
 * The ssh-agent protocol (draft-miller-ssh-agent; reference/install-enrol-approve.md §4) as the
 * device's `qubes.SshAgent` speaks it to a client qube: frames, the requests a client may send,
 * the answers the device's own ssh-agent gives, and what a signature request signs (an SSH
 * publickey userauth request, RFC 4252 §7, or an SSHSIG blob, OpenSSH PROTOCOL.sshsig).
 *
 * Every message is `uint32 length | byte type | contents`; strings are `uint32 length | bytes`.
 * The device answers only REQUEST_IDENTITIES, SIGN_REQUEST and the session-bind@openssh.com
 * extension; every other request decodes to `refused` (answered with FAILURE). Pure: bytes in,
 * typed values out.
 * Must never: allocate for a length before checking it against the limit, return a value that
 * holds more than the frame did, or throw anything but ProtocolError on peer bytes.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { ByteQueue } from "../byte-queue.ts";
import { ProtocolError } from "../errors.ts";

export const SSH_AGENT = {
  FAILURE: 5,
  SUCCESS: 6,
  REQUEST_IDENTITIES: 11,
  IDENTITIES_ANSWER: 12,
  SIGN_REQUEST: 13,
  SIGN_RESPONSE: 14,
  ADD_IDENTITY: 17,
  REMOVE_IDENTITY: 18,
  REMOVE_ALL_IDENTITIES: 19,
  ADD_SMARTCARD_KEY: 20,
  REMOVE_SMARTCARD_KEY: 21,
  LOCK: 22,
  UNLOCK: 23,
  ADD_ID_CONSTRAINED: 25,
  ADD_SMARTCARD_KEY_CONSTRAINED: 26,
  EXTENSION: 27,
  EXTENSION_FAILURE: 28,
} as const;

/** The one extension a client may send: binds the connection to an SSH session's host key. */
export const SESSION_BIND = "session-bind@openssh.com";
/** SSH_MSG_USERAUTH_REQUEST (RFC 4252 §5): the first byte after the session id in userauth data. */
const USERAUTH_REQUEST = 50;
const SSHSIG_MAGIC = "SSHSIG";
/**
 * OpenSSH 8.9+'s userauth method when the server offers it (PROTOCOL "publickey-hostbound"): as
 * "publickey", with the server's host key appended, so the signature names the host it is for.
 */
const HOSTBOUND = "publickey-hostbound-v00@openssh.com";

/** Requests the device does not serve, by name (for logs and the audit log). */
const REFUSED_NAMES: Readonly<Record<number, string>> = {
  [SSH_AGENT.ADD_IDENTITY]: "add-identity",
  [SSH_AGENT.REMOVE_IDENTITY]: "remove-identity",
  [SSH_AGENT.REMOVE_ALL_IDENTITIES]: "remove-all-identities",
  [SSH_AGENT.ADD_SMARTCARD_KEY]: "add-smartcard-key",
  [SSH_AGENT.REMOVE_SMARTCARD_KEY]: "remove-smartcard-key",
  [SSH_AGENT.LOCK]: "lock",
  [SSH_AGENT.UNLOCK]: "unlock",
  [SSH_AGENT.ADD_ID_CONSTRAINED]: "add-identity-constrained",
  [SSH_AGENT.ADD_SMARTCARD_KEY_CONSTRAINED]: "add-smartcard-key-constrained",
};

export type AgentRequest =
  | { readonly kind: "identities" }
  | { readonly kind: "sign"; readonly keyBlob: Uint8Array; readonly data: Uint8Array; readonly flags: number }
  | {
      readonly kind: "session-bind";
      readonly hostKey: Uint8Array;
      readonly sessionId: Uint8Array;
      readonly signature: Uint8Array;
      readonly forwarding: boolean;
    }
  /** Anything else: answered with FAILURE. `what` is our own name for it, never peer text. */
  | { readonly kind: "refused"; readonly what: string };

export interface Identity {
  readonly keyBlob: Uint8Array;
  readonly comment: string;
}

/** What a SIGN_REQUEST's data is, as far as the device can tell from its structure. */
export type SignedData =
  | {
      readonly kind: "userauth";
      readonly sessionId: Uint8Array;
      /** Client-supplied: log it reduced to printable ASCII (printableName), never show it as ours. */
      readonly user: string;
      readonly service: string;
      readonly algorithm: string;
      readonly keyBlob: Uint8Array;
      /** The server's host key, which publickey-hostbound-v00@openssh.com puts in the signed data. */
      readonly hostKey?: Uint8Array;
    }
  | { readonly kind: "sshsig"; readonly namespace: string; readonly hashAlgorithm: string }
  | { readonly kind: "other" };

/**
 * Splits a byte stream into agent messages (type byte and contents, without the length), each
 * at most `maxBytes` long. A zero length or one over the limit is a ProtocolError at once.
 */
export class AgentFramer {
  /** Held in a ByteQueue: a message sent a byte at a time costs O(n), not O(n²) (S1). */
  private readonly held = new ByteQueue();

  constructor(private readonly maxBytes: number) {}

  push(chunk: Uint8Array): Uint8Array[] {
    this.held.push(chunk);
    const out: Uint8Array[] = [];
    while (this.held.length >= 4) {
      const n = u32(this.held.peek(), 0);
      if (n === 0) throw new ProtocolError("frame-malformed", "empty ssh-agent message");
      if (n > this.maxBytes) throw new ProtocolError("frame-too-large", "ssh-agent message");
      if (this.held.length < 4 + n) break;
      out.push(this.held.take(4 + n).subarray(4));
    }
    return out;
  }

  /** True when bytes of an unfinished message are held (EOF now would cut a message). */
  get partial(): boolean {
    return this.held.length > 0;
  }
}

/** A client's request: type byte and contents (AgentFramer output). */
export function decodeRequest(message: Uint8Array): AgentRequest {
  const r = new Reader(message);
  const type = r.byte();
  switch (type) {
    case SSH_AGENT.REQUEST_IDENTITIES:
      r.end();
      return { kind: "identities" };
    case SSH_AGENT.SIGN_REQUEST: {
      const keyBlob = r.string();
      const data = r.string();
      const flags = r.u32();
      r.end();
      keyTypeOf(keyBlob); // a key blob starts with its type name
      return { kind: "sign", keyBlob, data, flags };
    }
    case SSH_AGENT.EXTENSION: {
      const name = r.string();
      if (!equalsText(name, SESSION_BIND)) return { kind: "refused", what: "extension" };
      const hostKey = r.string();
      const sessionId = r.string();
      const signature = r.string();
      const forwarding = r.bool();
      r.end();
      keyTypeOf(hostKey);
      return { kind: "session-bind", hostKey, sessionId, signature, forwarding };
    }
    default:
      return { kind: "refused", what: REFUSED_NAMES[type] ?? "unknown" };
  }
}

/** The device ssh-agent's IDENTITIES_ANSWER, at most `maxKeys` keys. */
export function decodeIdentitiesAnswer(message: Uint8Array, maxKeys: number): Identity[] {
  const r = new Reader(message);
  if (r.byte() !== SSH_AGENT.IDENTITIES_ANSWER) throw new ProtocolError("schema", "not an identities answer");
  const n = r.u32();
  if (n > maxKeys) throw new ProtocolError("schema", "too many identities");
  const out: Identity[] = [];
  for (let i = 0; i < n; i++) {
    const keyBlob = r.string();
    keyTypeOf(keyBlob);
    out.push({ keyBlob, comment: printableName(r.string()) });
  }
  r.end();
  return out;
}

/** The device ssh-agent's answer to a SIGN_REQUEST: the signature blob, or null for FAILURE. */
export function decodeSignResponse(message: Uint8Array): Uint8Array | null {
  const r = new Reader(message);
  const type = r.byte();
  if (type === SSH_AGENT.FAILURE) {
    r.end();
    return null;
  }
  if (type !== SSH_AGENT.SIGN_RESPONSE) throw new ProtocolError("schema", "not a sign response");
  const signature = r.string();
  r.end();
  keyTypeOf(signature); // a signature blob starts with its algorithm name
  return signature;
}

/** SUCCESS or FAILURE (the answer to session-bind); anything else is a ProtocolError. */
export function decodeStatus(message: Uint8Array): boolean {
  if (message.length === 1 && message[0] === SSH_AGENT.SUCCESS) return true;
  if (message.length === 1 && message[0] === SSH_AGENT.FAILURE) return false;
  throw new ProtocolError("schema", "not a status answer");
}

/** What the signed data is (never throws: data that is neither known form is "other"). */
export function parseSignedData(data: Uint8Array): SignedData {
  try {
    const r = new Reader(data);
    if (data.length >= 6 && equalsText(data.subarray(0, 6), SSHSIG_MAGIC)) {
      r.take(6);
      const namespace = r.text();
      r.string(); // reserved
      const hashAlgorithm = r.text();
      r.string(); // H(message)
      r.end();
      return {
        kind: "sshsig",
        namespace: printableName(namespace),
        hashAlgorithm: printableName(hashAlgorithm),
      };
    }
    const sessionId = r.string();
    if (r.byte() !== USERAUTH_REQUEST) return { kind: "other" };
    const user = r.text();
    const service = r.text();
    const method = r.text();
    if ((method !== "publickey" && method !== HOSTBOUND) || !r.bool()) return { kind: "other" };
    const algorithm = r.text();
    const keyBlob = r.string();
    const hostKey = method === HOSTBOUND ? r.string() : undefined;
    r.end();
    if (hostKey) keyTypeOf(hostKey);
    return {
      kind: "userauth",
      sessionId,
      user: printableName(user),
      service: printableName(service),
      algorithm: printableName(algorithm),
      keyBlob,
      ...(hostKey ? { hostKey } : {}),
    };
  } catch (e) {
    if (e instanceof ProtocolError) return { kind: "other" };
    throw e;
  }
}

/** SIGN_REQUEST flags (draft-miller-ssh-agent §5.3): which hash an RSA signature uses. */
export const SIGN_FLAGS = { RSA_SHA2_256: 2, RSA_SHA2_512: 4 } as const;

/**
 * True when this request would get an RSA signature over SHA-1 ("ssh-rsa"): an RSA key with
 * neither SHA-2 flag. The prompt shows the data's SHA-256, but such a signature is over its
 * SHA-1, for which chosen-prefix collisions are practical: the press would approve whatever
 * collides with what the prompt names. OpenSSH itself stopped accepting "ssh-rsa" in 8.8.
 */
export function wantsSha1Signature(keyBlob: Uint8Array, flags: number): boolean {
  const type = keyTypeOf(keyBlob);
  const rsa = type === "ssh-rsa" || type === "ssh-rsa-cert-v01@openssh.com";
  return rsa && (flags & (SIGN_FLAGS.RSA_SHA2_256 | SIGN_FLAGS.RSA_SHA2_512)) === 0;
}

/** The key type a key (or signature) blob names first: "ssh-ed25519", "rsa-sha2-512", … */
export function keyTypeOf(blob: Uint8Array): string {
  const name = new Reader(blob).text();
  if (!/^[a-z0-9][a-z0-9@._+-]{0,63}$/.test(name)) throw new ProtocolError("schema", "key type name");
  return name;
}

/** OpenSSH's fingerprint of a key blob: "SHA256:" and the unpadded base64 of its SHA-256. */
export function fingerprintOf(blob: Uint8Array): string {
  return `SHA256:${btoa(String.fromCharCode(...sha256(blob))).replace(/=+$/, "")}`;
}

/** One agent message on the wire: length, type, contents. */
export function encodeMessage(type: number, ...parts: Uint8Array[]): Uint8Array {
  const n = 1 + parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(4 + n);
  new DataView(out.buffer).setUint32(0, n, false);
  out[4] = type;
  let at = 5;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const FAILURE_MESSAGE = encodeMessage(SSH_AGENT.FAILURE);
export const SUCCESS_MESSAGE = encodeMessage(SSH_AGENT.SUCCESS);

export function encodeRequestIdentities(): Uint8Array {
  return encodeMessage(SSH_AGENT.REQUEST_IDENTITIES);
}

export function encodeIdentitiesAnswer(ids: readonly Identity[]): Uint8Array {
  return encodeMessage(
    SSH_AGENT.IDENTITIES_ANSWER,
    u32Bytes(ids.length),
    ...ids.flatMap((i) => [sshString(i.keyBlob), sshString(new TextEncoder().encode(i.comment))]),
  );
}

export function encodeSignRequest(keyBlob: Uint8Array, data: Uint8Array, flags: number): Uint8Array {
  return encodeMessage(SSH_AGENT.SIGN_REQUEST, sshString(keyBlob), sshString(data), u32Bytes(flags));
}

export function encodeSignResponse(signature: Uint8Array): Uint8Array {
  return encodeMessage(SSH_AGENT.SIGN_RESPONSE, sshString(signature));
}

export function encodeSessionBind(b: Extract<AgentRequest, { kind: "session-bind" }>): Uint8Array {
  return encodeMessage(
    SSH_AGENT.EXTENSION,
    sshString(new TextEncoder().encode(SESSION_BIND)),
    sshString(b.hostKey),
    sshString(b.sessionId),
    sshString(b.signature),
    Uint8Array.of(b.forwarding ? 1 : 0),
  );
}

export function sshString(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length, false);
  out.set(bytes, 4);
  return out;
}

/** Client text for a log line: printable ASCII only, at most 64 characters. */
export function printableName(bytesOrText: string | Uint8Array): string {
  const s =
    typeof bytesOrText === "string" ? bytesOrText : String.fromCharCode(...bytesOrText.subarray(0, 64));
  return s.slice(0, 64).replace(/[^\x20-\x7e]/g, "_");
}

function u32Bytes(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.length).getUint32(at, false);
}

function equalsText(bytes: Uint8Array, text: string): boolean {
  if (bytes.length !== text.length) return false;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Reads SSH wire types (RFC 4251 §5) from one message; running past its end is a ProtocolError. */
class Reader {
  private at = 0;
  constructor(private readonly b: Uint8Array) {}

  take(n: number): Uint8Array {
    if (n > this.b.length - this.at) throw new ProtocolError("frame-truncated", "ssh-agent field");
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  byte(): number {
    return this.take(1)[0]!;
  }
  bool(): boolean {
    const v = this.byte();
    if (v > 1) throw new ProtocolError("frame-malformed", "ssh-agent boolean");
    return v === 1;
  }
  u32(): number {
    return u32(this.take(4), 0);
  }
  string(): Uint8Array {
    return this.take(this.u32()).slice();
  }
  /** A string that must be UTF-8 text. */
  text(): string {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(this.string());
    } catch (e) {
      if (e instanceof ProtocolError) throw e;
      throw new ProtocolError("frame-malformed", "ssh-agent text is not UTF-8");
    }
  }
  end(): void {
    if (this.at !== this.b.length)
      throw new ProtocolError("frame-malformed", "trailing bytes in ssh-agent message");
  }
}
