/**
 * The crypto functions a Noise protocol is built from (Noise spec rev 34 §4): DH, cipher, hash.
 * Implementations are injected so that a runtime's native AEAD can replace the portable one
 * (DESIGN.md: Bun's native AES-GCM runs at GB/s, @noble ChaCha at ~90 MB/s).
 * Must never: keep key material beyond a call, or decide anything about the protocol.
 */

/** Bytes an encrypt() implementation may leave free before its output for a frame header. */
export const SEAL_HEADROOM = 64;

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** Spec §4.1. */
export interface DhFunctions {
  readonly name: string;
  readonly DHLEN: number;
  generateKeyPair(): KeyPair;
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair;
  /** Throws on an invalid (e.g. low-order) public key; callers treat that as a handshake failure. */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
}

/**
 * Spec §4.2. `n` is the 64-bit nonce; each cipher encodes it its own way (§12.3, §12.4).
 * encrypt() returns a view whose ArrayBuffer belongs to it alone: a framer may use any bytes
 * before its byteOffset (SEAL_HEADROOM where an implementation reserves them) for a header,
 * instead of copying the ciphertext behind one.
 */
export interface CipherFunctions {
  readonly name: "ChaChaPoly" | "AESGCM";
  encrypt(k: Uint8Array, n: bigint, ad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Throws (any error) when authentication fails; CipherState maps that to ProtocolError. */
  decrypt(k: Uint8Array, n: bigint, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
}

/** Spec §4.3. */
export interface HashFunctions {
  readonly name: string;
  readonly HASHLEN: number;
  readonly BLOCKLEN: number;
  hash(...parts: Uint8Array[]): Uint8Array;
  hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
}

export interface NoiseSuite {
  readonly dh: DhFunctions;
  readonly cipher: CipherFunctions;
  readonly hash: HashFunctions;
}

/** The 12-byte AEAD nonce: 4 zero bytes + n, little-endian for ChaChaPoly (§12.3). */
export function chachaNonce(n: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  view.setUint32(4, Number(n & 0xffffffffn), true);
  view.setUint32(8, Number(n >> 32n), true);
  return nonce;
}

/** The 12-byte AEAD nonce: 4 zero bytes + n, big-endian for AESGCM (§12.4). */
export function aesgcmNonce(n: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  view.setUint32(4, Number(n >> 32n), false);
  view.setUint32(8, Number(n & 0xffffffffn), false);
  return nonce;
}
