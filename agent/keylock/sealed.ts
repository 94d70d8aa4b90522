/**
 * The sealed key file: the device's secret key material (the files of a GnuPG home's
 * private-keys-v1.d) encrypted under a key derived from the person's PIN with scrypt, a
 * memory-hard KDF, and AES-256-GCM (docs/key-lock.md "At rest").
 *
 * Layout: the magic line, one JSON header line {kdf, N, r, p, salt, nonce}, then the ciphertext
 * with its 16-byte tag. The magic and the header are the AEAD's associated data, so a changed
 * parameter fails like a wrong PIN. A wrong PIN and a changed file are the same failure (the tag
 * does not verify): WrongPinError.
 * Must never: write the plaintext anywhere (the caller chooses where it goes: a tmpfs), accept KDF
 * parameters that would make the device allocate more than SCRYPT_MAX_MEM, or say which of PIN
 * and file was wrong.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb } from "node:crypto";
import { ConfigError } from "../../core/errors.ts";

export const SEALED_MAGIC = "qubes-air sealed key v1\n";

/**
 * scrypt N=2^15, r=8, p=1: 32 MiB of memory per guess. Measured here (x86-64, one core) at
 * about 0.08 s; a Pi Zero 2 W (Cortex-A53 at 1 GHz, 512 MiB) is estimated (not measured) at
 * about 1 s, once per unlock,
 * and keeps 32 MiB free easily. A guesser with the card pays the same 32 MiB per guess, which
 * blunts GPUs, but a 6-digit PIN is only 10^6 guesses: see docs/key-lock.md "What it does not do".
 */
export const SCRYPT_DEFAULTS = { N: 2 ** 15, r: 8, p: 1 } as const;
/** A header asking for more (a changed file) is refused before any allocation. */
const SCRYPT_MAX_MEM = 256 * 1024 * 1024;
/** The sealed file holds a few key files of ~1 KiB; anything far bigger is not ours. */
export const SEALED_MAX_BYTES = 4 * 1024 * 1024;

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** A name -> bytes map: the files of private-keys-v1.d. */
export type KeyFiles = ReadonlyMap<string, Uint8Array>;

/** The PIN did not open the sealed file (or the file was changed: the two look the same). */
export class WrongPinError extends Error {
  override readonly name = "WrongPinError";
  constructor() {
    super("the PIN does not open the sealed key");
  }
}

/** The file is not a sealed key file at all (wrong file, truncated, or rewritten). */
export class SealedFileError extends ConfigError {
  constructor(why: string) {
    super(`the sealed key file is unusable: ${why}; set the key up again with gpg-setup --pin`, 1);
  }
}

interface Header extends ScryptParams {
  readonly kdf: "scrypt";
  readonly salt: string;
  readonly nonce: string;
}

const enc = new TextEncoder();

function deriveKey(pin: string, salt: Uint8Array, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(
      Buffer.from(pin.normalize("NFC"), "utf8"),
      salt,
      32,
      { N: p.N, r: p.r, p: p.p, maxmem: SCRYPT_MAX_MEM },
      (e, k) => (e ? reject(e) : resolve(k)),
    ),
  );
}

/** The plaintext: name NUL length(u32 BE) bytes, repeated. Names are key file names only. */
function packFiles(files: KeyFiles): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, data] of files) {
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(name)) throw new Error(`BUG: key file name ${JSON.stringify(name)}`);
    const head = new Uint8Array(name.length + 5);
    head.set(enc.encode(name));
    new DataView(head.buffer).setUint32(name.length + 1, data.length, false);
    parts.push(head, data);
  }
  return Buffer.concat(parts);
}

function unpackFiles(b: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let i = 0;
  while (i < b.length) {
    const nul = b.indexOf(0, i);
    if (nul < 0 || nul - i > 128) throw new SealedFileError("bad inner layout");
    const name = new TextDecoder().decode(b.subarray(i, nul));
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(name) || nul + 5 > b.length)
      throw new SealedFileError("bad inner layout");
    const n = new DataView(b.buffer, b.byteOffset + nul + 1, 4).getUint32(0, false);
    const start = nul + 5;
    if (start + n > b.length) throw new SealedFileError("bad inner layout");
    // A copy (Buffer#slice is a view): the caller zeroes the plaintext buffer afterwards.
    out.set(name, new Uint8Array(b.subarray(start, start + n)));
    i = start + n;
  }
  return out;
}

export async function seal(
  files: KeyFiles,
  pin: string,
  params: ScryptParams = SCRYPT_DEFAULTS,
): Promise<Uint8Array> {
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const header: Header = {
    kdf: "scrypt",
    N: params.N,
    r: params.r,
    p: params.p,
    salt: salt.toString("base64"),
    nonce: nonce.toString("base64"),
  };
  const aad = enc.encode(`${SEALED_MAGIC}${JSON.stringify(header)}\n`);
  const key = await deriveKey(pin, salt, params);
  try {
    const c = createCipheriv("aes-256-gcm", key, nonce);
    c.setAAD(aad);
    const plain = packFiles(files);
    const body = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    plain.fill(0);
    return Buffer.concat([aad, body]);
  } finally {
    key.fill(0);
  }
}

/** Parses the header (bounded) and returns it with the associated data and the body. */
export function parseSealed(bytes: Uint8Array): { header: Header; aad: Uint8Array; body: Uint8Array } {
  if (bytes.length > SEALED_MAX_BYTES) throw new SealedFileError("too big");
  const magic = enc.encode(SEALED_MAGIC);
  if (bytes.length < magic.length || !magic.every((c, i) => bytes[i] === c))
    throw new SealedFileError("not a sealed key file");
  const nl = bytes.indexOf(10, magic.length);
  if (nl < 0 || nl - magic.length > 512) throw new SealedFileError("no header");
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(magic.length, nl)));
  } catch {
    throw new SealedFileError("bad header");
  }
  const pow2 = (n: unknown) =>
    Number.isInteger(n) && (n as number) >= 2 && ((n as number) & ((n as number) - 1)) === 0;
  const int = (n: unknown, max: number) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= max;
  if (
    h === null ||
    typeof h !== "object" ||
    h.kdf !== "scrypt" ||
    !pow2(h.N) ||
    !int(h.r, 32) ||
    !int(h.p, 16) ||
    typeof h.salt !== "string" ||
    typeof h.nonce !== "string" ||
    (h.N as number) * (h.r as number) * 128 * 2 > SCRYPT_MAX_MEM
  )
    throw new SealedFileError("bad header");
  const salt = Buffer.from(h.salt as string, "base64");
  const nonce = Buffer.from(h.nonce as string, "base64");
  if (salt.length < 16 || salt.length > 64 || nonce.length !== 12) throw new SealedFileError("bad header");
  const body = bytes.subarray(nl + 1);
  if (body.length < 16) throw new SealedFileError("truncated");
  return { header: h as unknown as Header, aad: bytes.subarray(0, nl + 1), body };
}

/** Opens a sealed file with the PIN; throws WrongPinError or SealedFileError. */
export async function unseal(bytes: Uint8Array, pin: string): Promise<Map<string, Uint8Array>> {
  const { header, aad, body } = parseSealed(bytes);
  const key = await deriveKey(pin, Buffer.from(header.salt, "base64"), header);
  let plain: Buffer;
  try {
    const d = createDecipheriv("aes-256-gcm", key, Buffer.from(header.nonce, "base64"));
    d.setAAD(aad);
    d.setAuthTag(body.subarray(body.length - 16));
    plain = Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
  } catch {
    throw new WrongPinError();
  } finally {
    key.fill(0);
  }
  try {
    return unpackFiles(plain);
  } finally {
    plain.fill(0);
  }
}
