/**
 * The keys of the split-GPG version matrix, one per key type, each a certify-only primary key
 * with a signing and an encryption subkey, no passphrase: made once per run with GnuPG 2.4
 * (the only one that makes them all), exported as armored secret keys for `gpg-setup --import`
 * and as public keys for clients and verifiers.
 * Not part of the product.
 */
import { join } from "node:path";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";
import type { GnupgVersion } from "./gpg-versions.ts";

export interface KeyType {
  readonly name: string;
  /** Algorithm strings for --quick-gen-key / --quick-add-key: certify, sign, encrypt. */
  readonly algos: readonly [string, string, string];
  /** A v5 key (64-hex fingerprint): only GnuPG 2.4 reads it. */
  readonly v5: boolean;
}

export const KEY_TYPES: readonly KeyType[] = [
  { name: "ed25519/cv25519", algos: ["ed25519", "ed25519", "cv25519"], v5: false },
  { name: "rsa3072", algos: ["rsa3072", "rsa3072", "rsa3072"], v5: false },
  { name: "nistp256", algos: ["nistp256/ecdsa", "nistp256/ecdsa", "nistp256/ecdh"], v5: false },
  {
    name: "brainpoolP256r1",
    algos: ["brainpoolP256r1/ecdsa", "brainpoolP256r1/ecdsa", "brainpoolP256r1/ecdh"],
    v5: false,
  },
  { name: "ed448/cv448 (v5)", algos: ["ed448", "ed448", "cv448"], v5: true },
];

export interface MatrixKey {
  readonly type: KeyType;
  readonly uid: string;
  readonly fingerprint: string;
  readonly signFpr: string;
  readonly encrFpr: string;
  /** Armored secret key (primary and subkeys), the file `gpg-setup --import` takes. */
  readonly secretFile: string;
  readonly publicKey: string;
}

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Whether a GnuPG of this version can use the key at all (2.2 does not read v5 keys). */
export function usable(key: Pick<MatrixKey, "type">, v: GnupgVersion): boolean {
  return !key.type.v5 || v.label === "2.4";
}

async function ok(argv: string[]): Promise<string> {
  const r = await capture(argv, { timeoutMs: 120_000 });
  if (r.status !== 0) throw new Error(`${argv.slice(3).join(" ")} failed (${r.status}): ${dec(r.stderr)}`);
  return dec(r.stdout);
}

async function makeKey(v24: GnupgVersion, dir: string, type: KeyType, n: number): Promise<MatrixKey> {
  const home = join(dir, `k${n}`);
  await ok(["mkdir", "-m", "700", "-p", home]);
  const gpg = [v24.gpg, "--homedir", home, "--batch", "--no-tty", "--compliance=gnupg", "--passphrase", ""];
  // One agent, started before gpg needs it: on a loaded machine gpg's own autostart can race
  // itself into two agents for one home, and the key made in one is then "No secret key" to the other.
  await ok([v24.gpgconf, "--homedir", home, "--launch", "gpg-agent"]);
  const uid = `Matrix ${type.name} <m${n}@example.invalid>`;
  const [cert, sign, encr] = type.algos;
  const made = await ok([...gpg, "--status-fd", "1", "--quick-gen-key", uid, cert, "cert", "never"]);
  const fingerprint = /KEY_CREATED P ([0-9A-F]+)/.exec(made)![1]!;
  await ok([...gpg, "--quick-add-key", fingerprint, sign, "sign", "never"]);
  await ok([...gpg, "--quick-add-key", fingerprint, encr, "encr", "never"]);
  const listing = await ok([...gpg, "--with-colons", "--fixed-list-mode", "--list-keys", fingerprint]);
  const subs = [...listing.matchAll(/^sub:(?:[^:]*:){10}([a-zA-Z]*):[^\n]*\nfpr:+([0-9A-F]+):/gm)];
  const signFpr = subs.find((m) => m[1]!.includes("s"))![2]!;
  const encrFpr = subs.find((m) => m[1]!.includes("e"))![2]!;
  const secretFile = join(dir, `k${n}.sec.asc`);
  await Bun.write(secretFile, await ok([...gpg, "--armor", "--export-secret-keys", fingerprint]));
  const publicKey = await ok([...gpg, "--armor", "--export", fingerprint]);
  await capture([v24.gpgconf, "--homedir", home, "--kill", "all"]);
  return { type, uid, fingerprint, signFpr, encrFpr, secretFile, publicKey };
}

/** All key types, made two at a time (the machine has two cores). */
export async function makeMatrixKeys(v24: GnupgVersion, dir: string): Promise<MatrixKey[]> {
  const keys: MatrixKey[] = [];
  for (let i = 0; i < KEY_TYPES.length; i += 2) {
    const batch = KEY_TYPES.slice(i, i + 2).map((t, j) => makeKey(v24, dir, t, i + j));
    keys.push(...(await Promise.all(batch)));
  }
  return keys;
}
