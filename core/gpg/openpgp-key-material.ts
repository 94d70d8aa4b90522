/**
 * The public part of an OpenPGP key packet (RFC 9580 §5.5.2, §5.5.5; RFC 6637 and
 * draft-koch-eddsa-for-openpgp for the legacy EC forms), read field by field so that a key packet
 * holds exactly its public key and nothing after it. qubes.GpgImportKey shows a fingerprint
 * computed over the whole packet body; gpg computes its own over the fields it reads, ignoring
 * bytes after them. Without this check a key with trailing bytes showed one fingerprint on the
 * prompt and was imported under another (red team I1, docs/threat-model.md).
 * Pure. Must never: accept a body with bytes after its key material, or read past the body.
 */

/** Fixed-size native keys of RFC 9580: algorithm id -> octets. */
const NATIVE_SIZES: ReadonlyMap<number, number> = new Map([
  [25, 32], // X25519
  [26, 56], // X448
  [27, 32], // Ed25519
  [28, 57], // Ed448
]);

class Bad {
  constructor(readonly what: string) {}
}

/** Null when `body` (a v4, v5 or v6 key packet) is exactly a public key, else what is wrong. */
export function keyMaterialProblem(body: Uint8Array): string | null {
  try {
    readMaterial(body);
    return null;
  } catch (e) {
    if (e instanceof Bad) return e.what;
    throw e;
  }
}

function readMaterial(body: Uint8Array): void {
  const bad = (what: string): never => {
    throw new Bad(what);
  };
  const version = body[0];
  let at = version === 4 ? 6 : 10; // version, created (4), algorithm; v5/v6 add a 4-byte count
  if (body.length < at) bad("too short");
  const algo = body[5]!;
  if (version !== 4) {
    const count = new DataView(body.buffer, body.byteOffset + 6, 4).getUint32(0, false);
    if (count !== body.length - at) bad("its key material count does not match");
  }
  const take = (n: number) => {
    if (n > body.length - at) bad("truncated key material");
    at += n;
  };
  const mpi = () => {
    if (body.length - at < 2) bad("truncated key material");
    const bits = (body[at]! << 8) | body[at + 1]!;
    at += 2;
    take((bits + 7) >> 3);
  };
  const oid = () => {
    if (at >= body.length) bad("truncated key material");
    const n = body[at++]!;
    if (n === 0 || n === 0xff) bad("curve OID length");
    take(n);
  };
  switch (algo) {
    case 1:
    case 2:
    case 3: // RSA: n, e
      mpi();
      mpi();
      break;
    case 16: // Elgamal: p, g, y
      mpi();
      mpi();
      mpi();
      break;
    case 17: // DSA: p, q, g, y
      mpi();
      mpi();
      mpi();
      mpi();
      break;
    case 19: // ECDSA: curve, point
    case 22: // EdDSA (legacy): curve, point
      oid();
      mpi();
      break;
    case 18: {
      // ECDH: curve, point, KDF parameters (length, 1, hash, cipher)
      oid();
      mpi();
      if (at >= body.length) bad("truncated key material");
      const n = body[at++]!;
      if (n !== 3 || body[at] !== 1) bad("ECDH KDF parameters");
      take(n);
      break;
    }
    default: {
      const size = NATIVE_SIZES.get(algo);
      if (size === undefined) bad("unknown public-key algorithm");
      take(size!);
    }
  }
  if (at !== body.length) bad("bytes after the key material");
}
