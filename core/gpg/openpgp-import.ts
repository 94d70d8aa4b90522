/**
 * What qubes.GpgImportKey accepts (docs/split-gpg.md "qubes.GpgImportKey"): OpenPGP public keys
 * and nothing else, armored ("PUBLIC KEY BLOCK") or binary, parsed into their packets (RFC 9580
 * §4) before gpg sees a byte. Upstream's service pipes whatever the client sent into
 * `gpg --import`, which also imports secret keys; here a secret key (tag 5) or secret subkey
 * (tag 7) anywhere, a PRIVATE KEY BLOCK, and every packet a transferable public key does not
 * have (compressed or encrypted data, literal data, markers, ...) refuse the whole import.
 * gpg then gets our own re-encoding of the accepted packets, so it cannot read anything we did
 * not parse. Each key's fingerprint (v4: SHA-1, v6: SHA-256) is computed for the prompt; nothing
 * the client wrote (user IDs) is ever shown.
 * Pure. Must never: return data that holds a packet outside ALLOWED_TAGS, or accept partial or
 * indeterminate lengths.
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ProtocolError } from "../errors.ts";
import { GPG_IMPORT_LIMITS } from "../qrexec/services.ts";
import { keyMaterialProblem } from "./openpgp-key-material.ts";

export type ImportRefusal =
  | "secret-key"
  | "packet-not-allowed"
  | "not-a-key"
  | "malformed"
  | "armor"
  | "too-many";

export class KeyImportError extends ProtocolError {
  constructor(
    readonly reason: ImportRefusal,
    detail: string,
  ) {
    super("gpg-import", detail);
  }
}

export const TAG = {
  signature: 2,
  secretKey: 5,
  publicKey: 6,
  secretSubkey: 7,
  userId: 13,
  publicSubkey: 14,
  userAttribute: 17,
} as const;
/** The packets of a transferable public key (RFC 9580 §10.1). */
const ALLOWED_TAGS = new Set<number>([
  TAG.signature,
  TAG.publicKey,
  TAG.userId,
  TAG.publicSubkey,
  TAG.userAttribute,
]);
const SECRET_TAGS = new Set<number>([TAG.secretKey, TAG.secretSubkey]);

export interface ImportedKey {
  readonly version: number;
  /** Upper-case hex: v4 SHA-1 (40), v5/v6 SHA-256 (64). */
  readonly fingerprint: string;
}

export interface ParsedImport {
  readonly keys: readonly ImportedKey[];
  /** The accepted packets, re-encoded with new-format headers: what gpg is given. */
  readonly binary: Uint8Array;
}

export function parseKeyImport(data: Uint8Array): ParsedImport {
  if (data.length > GPG_IMPORT_LIMITS.maxBytes) throw new KeyImportError("too-many", "key data too large");
  const binary = looksArmored(data) ? dearmor(data) : [data];
  const out: Uint8Array[] = [];
  const keys: ImportedKey[] = [];
  let packets = 0;
  let size = 0;
  for (const block of binary) {
    let at = 0;
    while (at < block.length) {
      // The tag is judged before the length: a secret key or compressed data with a length form
      // we do not read (indeterminate, partial) is still named for what it is.
      const tag = tagOf(block[at]!);
      if (++packets > GPG_IMPORT_LIMITS.maxPackets) throw new KeyImportError("too-many", "too many packets");
      if (SECRET_TAGS.has(tag))
        throw new KeyImportError("secret-key", "secret key material is never imported");
      if (!ALLOWED_TAGS.has(tag))
        throw new KeyImportError("packet-not-allowed", `packet type ${tag} is not part of a public key`);
      const p = readPacket(block, at);
      at = p.next;
      if (keys.length === 0 && p.tag !== TAG.publicKey)
        throw new KeyImportError("not-a-key", "key data must start with a public key packet");
      if (p.tag === TAG.publicKey) {
        if (keys.length >= GPG_IMPORT_LIMITS.maxKeys) throw new KeyImportError("too-many", "too many keys");
        keys.push(keyOf(p.body));
      }
      if (p.tag === TAG.publicSubkey) keyOf(p.body); // same checks: version and length
      const framed = frame(p.tag, p.body);
      out.push(framed);
      size += framed.length;
    }
  }
  if (keys.length === 0) throw new KeyImportError("not-a-key", "no public key in the data");
  const all = new Uint8Array(size);
  let o = 0;
  for (const b of out) {
    all.set(b, o);
    o += b.length;
  }
  return { keys, binary: all };
}

function keyOf(body: Uint8Array): ImportedKey {
  const version = body[0];
  if (version !== 4 && version !== 5 && version !== 6)
    throw new KeyImportError("not-a-key", "only version 4, 5 and 6 keys are imported");
  // The fingerprint below is over the whole body: it must hold the public key and nothing else,
  // or gpg (which reads the fields) imports the key under another fingerprint than the prompt's.
  const problem = keyMaterialProblem(body);
  if (problem !== null) throw new KeyImportError("malformed", `key packet: ${problem}`);
  if (version === 4) {
    if (body.length > 0xffff) throw new KeyImportError("malformed", "key packet too large");
    const pre = new Uint8Array([0x99, body.length >> 8, body.length & 0xff]);
    return { version, fingerprint: hex(sha1(concat(pre, body))) };
  }
  if (version === 5 || version === 6) {
    const n = body.length;
    const pre = new Uint8Array([
      version === 6 ? 0x9b : 0x9a,
      n >>> 24,
      (n >>> 16) & 0xff,
      (n >>> 8) & 0xff,
      n & 0xff,
    ]);
    return { version, fingerprint: hex(sha256(concat(pre, body))) };
  }
  throw new KeyImportError("not-a-key", "only version 4, 5 and 6 keys are imported");
}

function tagOf(h: number): number {
  if ((h & 0x80) === 0) throw new KeyImportError("malformed", "malformed packet header or length");
  return h & 0x40 ? h & 0x3f : (h >> 2) & 0x0f;
}

interface Packet {
  readonly tag: number;
  readonly body: Uint8Array;
  readonly next: number;
}

function readPacket(b: Uint8Array, at: number): Packet {
  const bad = (): never => {
    throw new KeyImportError("malformed", "malformed packet header or length");
  };
  const h = b[at] ?? bad();
  if ((h & 0x80) === 0) bad();
  let tag: number;
  let len: number;
  let pos = at + 1;
  const byte = () => (pos < b.length ? b[pos++]! : bad());
  if (h & 0x40) {
    tag = h & 0x3f;
    const o1 = byte();
    if (o1 < 192) len = o1;
    else if (o1 < 224) len = ((o1 - 192) << 8) + byte() + 192;
    else if (o1 === 255) len = ((byte() << 24) >>> 0) + (byte() << 16) + (byte() << 8) + byte();
    else return bad(); // partial body lengths never frame key packets
  } else {
    tag = (h >> 2) & 0x0f;
    const type = h & 3;
    if (type === 3) bad(); // indeterminate length
    len = 0;
    for (let i = 0; i < 1 << type; i++) len = len * 256 + byte();
  }
  if (len > b.length - pos) bad();
  return { tag, body: b.subarray(pos, pos + len), next: pos + len };
}

function frame(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  const head =
    n < 192
      ? [0xc0 | tag, n]
      : n < 8384
        ? [0xc0 | tag, ((n - 192) >> 8) + 192, (n - 192) & 0xff]
        : [0xc0 | tag, 255, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  return concat(new Uint8Array(head), body);
}

function looksArmored(d: Uint8Array): boolean {
  // Binary packets start with a byte that has bit 7 set; armor is ASCII text.
  return d.length > 0 && (d[0]! & 0x80) === 0;
}

const BEGIN = /^-----BEGIN PGP ([A-Z ,/0-9]+)-----$/;
const END = /^-----END PGP ([A-Z ,/0-9]+)-----$/;

/** Every armored block's packets; text outside the blocks is ignored (gpg never sees it). */
function dearmor(d: Uint8Array): Uint8Array[] {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(d);
  } catch {
    throw new KeyImportError("armor", "armored key data must be text");
  }
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l).trimEnd());
  const blocks: Uint8Array[] = [];
  let i = 0;
  while (i < lines.length) {
    const begin = BEGIN.exec(lines[i++]!);
    if (!begin) continue;
    const kind = begin[1]!;
    if (/PRIVATE|SECRET/.test(kind))
      throw new KeyImportError("secret-key", "secret key material is never imported");
    if (kind !== "PUBLIC KEY BLOCK")
      throw new KeyImportError("packet-not-allowed", "only PUBLIC KEY BLOCK armor is imported");
    // Armor headers ("Version: ...") up to the first empty line.
    while (i < lines.length && lines[i] !== "") {
      if (!/^[A-Za-z][A-Za-z0-9-]*: /.test(lines[i]!)) throw new KeyImportError("armor", "bad armor header");
      i++;
    }
    if (i >= lines.length) throw new KeyImportError("armor", "armor ends early");
    i++;
    let b64 = "";
    let crc: string | null = null;
    for (;;) {
      if (i >= lines.length) throw new KeyImportError("armor", "armor ends early");
      const l = lines[i++]!;
      const end = END.exec(l);
      if (end) {
        if (end[1] !== kind) throw new KeyImportError("armor", "armor end does not match its begin");
        break;
      }
      if (crc !== null) throw new KeyImportError("armor", "text after the armor checksum");
      if (l.startsWith("=") && /^=[A-Za-z0-9+/]{4}$/.test(l)) crc = l.slice(1);
      else if (/^[A-Za-z0-9+/=]*$/.test(l)) b64 += l;
      else throw new KeyImportError("armor", "bad base64 in the armor");
    }
    const bytes = base64(b64);
    if (crc !== null && base64(crc).reduce((a, x) => (a << 8) | x, 0) !== crc24(bytes))
      throw new KeyImportError("armor", "armor checksum mismatch");
    blocks.push(bytes);
  }
  if (blocks.length === 0) throw new KeyImportError("not-a-key", "no PUBLIC KEY BLOCK in the text");
  return blocks;
}

function base64(s: string): Uint8Array {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s))
    throw new KeyImportError("armor", "bad base64 in the armor");
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) out[k] = bin.charCodeAt(k);
  return out;
}

/** RFC 9580 §6.1.1. */
function crc24(d: Uint8Array): number {
  let crc = 0xb704ce;
  for (const x of d) {
    crc ^= x << 16;
    for (let k = 0; k < 8; k++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0"))
    .join("")
    .toUpperCase();
}
