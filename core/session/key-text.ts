/**
 * Static X25519 keys: their branded types and every way to get one, from the text formats
 * (docs/key-files.md) or from raw bytes. Pure: platform/key-file.ts does the file I/O,
 * permission and size checks.
 *
 * The brands are what the session layer (Session, the handshake options, the peer stores) takes,
 * so a key that reaches them has been parsed here, once: 32 bytes, not an arbitrary buffer.
 *
 * Key file (one per device or host; mode 0600; written by `keygen`):
 *
 *   # qubes-air static key (X25519). Keep this file private: mode 0600.
 *   private: qa-priv:<64 hex digits>
 *   public: qa-pub:<64 hex digits>
 *
 * Public key (a pinned peer: the host registry, the agent's pinned host key), one line:
 *
 *   qa-pub:<64 hex digits>
 *
 * Rules: UTF-8; lines end with LF (a CR before it is ignored); surrounding spaces and tabs are
 * ignored; empty lines and lines starting with `#` are comments. In a key file each of `private:`
 * and `public:` appears exactly once and nothing else; the public key must be the one derived
 * from the private key. Hex digits may be upper or lower case; we write lower case. A public-key
 * file may hold either form of the public line (`qa-pub:...` or `public: qa-pub:...`), and never a
 * private line. An all-zero key is refused (a placeholder, never a real key).
 *
 * Must never: put key bytes or the text of a line into an error message (the file is secret),
 * or accept a key file whose two halves do not belong together.
 */
import { equalBytes } from "../bytes.ts";
import { assert, ConfigError, ProtocolError } from "../errors.ts";
import type { KeyPair } from "../noise/crypto.ts";
import { dh25519 } from "../noise/crypto-noble.ts";

export const PRIVATE_KEY_PREFIX = "qa-priv:";
export const PUBLIC_KEY_PREFIX = "qa-pub:";
/** X25519 keys are 32 bytes (DHLEN). */
export const STATIC_KEY_BYTES = 32;
/** A key file is about 200 bytes; anything near this is not one (checked before reading). */
export const KEY_FILE_MAX_BYTES = 4096;

export const KEY_FILE_HEADER = "# qubes-air static key (X25519). Keep this file private: mode 0600.";

declare const privateBrand: unique symbol;
declare const publicBrand: unique symbol;
/** 32 bytes of X25519 private key, checked by parseKeyFile or made by generateStaticKeyPair. */
export type StaticPrivateKey = Uint8Array & { readonly [privateBrand]: true };
/** 32 bytes of X25519 public key, checked by a parser here or derived from a private key. */
export type StaticPublicKey = Uint8Array & { readonly [publicBrand]: true };

export interface StaticKeyPair extends KeyPair {
  readonly privateKey: StaticPrivateKey;
  readonly publicKey: StaticPublicKey;
}

/**
 * Raw bytes as a public key (the peer's static key from a handshake, a key given as hex): the one
 * place bytes become a StaticPublicKey. The bytes come from a peer, so a wrong length is a
 * ProtocolError. Returns a copy: the caller's buffer may be reused.
 */
export function publicKeyFromBytes(bytes: Uint8Array): StaticPublicKey {
  if (bytes.length !== STATIC_KEY_BYTES) throw new ProtocolError("handshake-malformed", "static key length");
  return bytes.slice() as StaticPublicKey;
}

/** A fresh static key pair from the system CSPRNG (through @noble). */
export function generateStaticKeyPair(): StaticKeyPair {
  return staticKeyPairFromPrivate(dh25519.generateKeyPair().privateKey);
}

/** The pair for a 32-byte private key (the public half is derived, never trusted from text). */
export function staticKeyPairFromPrivate(privateKey: Uint8Array): StaticKeyPair {
  checkLength(privateKey, "private");
  const pair = dh25519.keyPairFromPrivate(privateKey.slice());
  return { privateKey: pair.privateKey as StaticPrivateKey, publicKey: pair.publicKey as StaticPublicKey };
}

/** The whole key file text for a pair, header comment included, ending with a newline. */
export function formatKeyFile(pair: StaticKeyPair): string {
  checkLength(pair.privateKey, "private");
  checkLength(pair.publicKey, "public");
  return `${KEY_FILE_HEADER}\nprivate: ${PRIVATE_KEY_PREFIX}${toHex(pair.privateKey)}\npublic: ${formatPublicKey(pair.publicKey)}\n`;
}

/** `qa-pub:<hex>`: the form shown to users, pinned in registries, and written to public-key files. */
export function formatPublicKey(publicKey: StaticPublicKey): string {
  checkLength(publicKey, "public");
  return `${PUBLIC_KEY_PREFIX}${toHex(publicKey)}`;
}

/**
 * Parses a key file. `source` names it in errors (a path); every error says what is wrong and how
 * to fix it, and none quotes the file.
 */
export function parseKeyFile(text: string, source = "the key file"): StaticKeyPair {
  let privateHex: { value: string; line: number } | null = null;
  let publicHex: { value: string; line: number } | null = null;
  const lines = contentLines(text);
  for (const { text: line, number } of lines) {
    const field = /^(private|public)[ \t]*:[ \t]*(.*)$/.exec(line);
    if (!field) {
      throw new ConfigError(
        `${source}, line ${number}: expected "private: ${PRIVATE_KEY_PREFIX}..." or "public: ${PUBLIC_KEY_PREFIX}..."; ${REGENERATE}`,
      );
    }
    const [, name, value] = field as unknown as [string, "private" | "public", string];
    const entry = { value, line: number };
    if (name === "private") {
      if (privateHex)
        throw new ConfigError(`${source}, line ${number}: a second "private:" line; ${REGENERATE}`);
      privateHex = entry;
    } else {
      if (publicHex)
        throw new ConfigError(`${source}, line ${number}: a second "public:" line; ${REGENERATE}`);
      publicHex = entry;
    }
  }
  if (!privateHex) {
    throw new ConfigError(
      `${source} has no "private: ${PRIVATE_KEY_PREFIX}..." line (is it a public-key file?); ${REGENERATE}`,
    );
  }
  if (!publicHex)
    throw new ConfigError(`${source} has no "public: ${PUBLIC_KEY_PREFIX}..." line; ${REGENERATE}`);
  const privateKey = decodeKey(privateHex.value, PRIVATE_KEY_PREFIX, `${source}, line ${privateHex.line}`);
  const statedPublic = decodeKey(publicHex.value, PUBLIC_KEY_PREFIX, `${source}, line ${publicHex.line}`);
  const pair = staticKeyPairFromPrivate(privateKey);
  privateKey.fill(0);
  if (!equalBytes(pair.publicKey, statedPublic)) {
    throw new ConfigError(
      `${source}: the public key does not belong to the private key (the file was edited or mixed from ` +
        `two keys). Restore it from a backup, or generate a new key and pair again.`,
    );
  }
  return pair;
}

/**
 * Parses a public key: the single line `qa-pub:<hex>` (a pinned peer), or the text of a
 * public-key file (comments allowed; `public: qa-pub:<hex>` also accepted). A private key is
 * refused, so a secret is never pinned or copied by mistake.
 */
export function parsePublicKey(text: string, source = "the public key"): StaticPublicKey {
  const lines = contentLines(text);
  if (lines.some((l) => /^private[ \t]*:/.test(l.text) || l.text.startsWith(PRIVATE_KEY_PREFIX))) {
    throw new ConfigError(
      `${source} holds a private key. Give only the public key (the "${PUBLIC_KEY_PREFIX}..." value), and keep ` +
        "the private key file on its own machine with mode 0600.",
    );
  }
  if (lines.length !== 1) {
    throw new ConfigError(
      lines.length === 0
        ? `${source} is empty; it must hold one line "${PUBLIC_KEY_PREFIX}<64 hex digits>".`
        : `${source} has ${lines.length} lines; it must hold exactly one "${PUBLIC_KEY_PREFIX}<64 hex digits>".`,
    );
  }
  const { text: line, number } = lines[0]!;
  const value = line.replace(/^public[ \t]*:[ \t]*/, "");
  const where = number === 1 ? source : `${source}, line ${number}`;
  return decodeKey(value, PUBLIC_KEY_PREFIX, where) as StaticPublicKey;
}

const REGENERATE = "restore the file, or generate a new key (and pair the device again).";

function contentLines(text: string): { text: string; number: number }[] {
  const out: { text: string; number: number }[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "").trim();
    if (line.length > 0 && !line.startsWith("#")) out.push({ text: line, number: i + 1 });
  });
  return out;
}

/** `<prefix><64 hex>` -> 32 bytes. Errors describe the shape only, never the characters. */
function decodeKey(value: string, prefix: string, where: string): Uint8Array {
  const kind = prefix === PRIVATE_KEY_PREFIX ? "private" : "public";
  if (!value.startsWith(prefix)) {
    const other = prefix === PRIVATE_KEY_PREFIX ? PUBLIC_KEY_PREFIX : PRIVATE_KEY_PREFIX;
    const hint = value.startsWith(other) ? ` (found "${other}": the two keys are swapped)` : "";
    throw new ConfigError(`${where}: the ${kind} key must start with "${prefix}"${hint}.`);
  }
  const hex = value.slice(prefix.length);
  if (!/^[0-9a-fA-F]*$/.test(hex)) {
    throw new ConfigError(
      `${where}: the ${kind} key must be hexadecimal digits (0-9, a-f) after "${prefix}".`,
    );
  }
  if (hex.length !== STATIC_KEY_BYTES * 2) {
    throw new ConfigError(
      `${where}: the ${kind} key must be ${STATIC_KEY_BYTES * 2} hex digits (${STATIC_KEY_BYTES} bytes), ` +
        `not ${hex.length}; the value is truncated or not an X25519 key.`,
    );
  }
  const bytes = new Uint8Array(STATIC_KEY_BYTES);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  if (bytes.every((b) => b === 0))
    throw new ConfigError(`${where}: the ${kind} key is all zeros (a placeholder).`);
  return bytes;
}

/** Our own callers pass keys of the right size; anything else is a bug. */
function checkLength(key: Uint8Array, kind: string): void {
  assert(key.length === STATIC_KEY_BYTES, `a static ${kind} key must be 32 bytes`);
}

function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}
