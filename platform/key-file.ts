/**
 * Static key files on disk (format: core/session/key-text.ts, docs/key-files.md).
 *
 * A private key file must be a regular file of at most KEY_FILE_MAX_BYTES, owned by the user who
 * loads it, with no group or other permission bits (like OpenSSH's identity files). A public-key
 * file (a pinned peer) need not be secret, but must not be writable by group or others: whoever
 * can replace it can impersonate the peer. Every problem is a ConfigError that names the path and
 * the command that fixes it, and never quotes the file.
 *
 * Writes are atomic: a temporary file with mode 0600 beside the target, fsync, then link (no
 * overwrite) or rename (overwrite), then fsync of the directory. A failed write removes the
 * temporary file; the old key, if any, is untouched.
 *
 * Uses node:fs/promises directly, which Bun and Node 18+ both implement.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, link, lstat, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import {
  formatKeyFile,
  formatPublicKey,
  generateStaticKeyPair,
  KEY_FILE_MAX_BYTES,
  parseKeyFile,
  parsePublicKey,
  type StaticKeyPair,
  type StaticPublicKey,
} from "../core/session/key-text.ts";

export interface LoadKeyOptions {
  /** How the user creates the key, for the "missing file" message. Default: agent keygen. */
  readonly keygenCommand?: string;
}

export interface WriteKeyOptions {
  /** Replace an existing file. Default false: an existing key is never destroyed by accident. */
  readonly overwrite?: boolean;
}

const DEFAULT_KEYGEN = "qubes-air-agent keygen --out";

/** Loads and checks a private key file; the public half is verified against the private one. */
export async function loadKeyPair(path: string, options: LoadKeyOptions = {}): Promise<StaticKeyPair> {
  const keygen = options.keygenCommand ?? DEFAULT_KEYGEN;
  const text = await readKeyText(path, "private", `create it with: ${keygen} ${shellQuote(path)}`);
  return parseKeyFile(text, path);
}

/** Loads a pinned public key (`qa-pub:<hex>`). */
export async function loadPublicKey(path: string): Promise<StaticPublicKey> {
  const text = await readKeyText(path, "public", "copy the peer's public key (qa-pub:...) into it");
  return parsePublicKey(text, path);
}

/** Generates a new key pair and writes it to `path` with mode 0600 (atomically). */
export async function generateKeyFile(path: string, options: WriteKeyOptions = {}): Promise<StaticKeyPair> {
  const pair = generateStaticKeyPair();
  await writeKeyFile(path, pair, options);
  return pair;
}

/** Writes an existing pair (migration, tests) with mode 0600 (atomically). */
export async function writeKeyFile(
  path: string,
  pair: StaticKeyPair,
  options: WriteKeyOptions = {},
): Promise<void> {
  await writeAtomic(path, formatKeyFile(pair), 0o600, options.overwrite ?? false);
}

/** Writes a pinned public key file (`qa-pub:<hex>` and a newline) with mode 0644 (atomically). */
export async function writePublicKeyFile(
  path: string,
  publicKey: StaticPublicKey,
  options: WriteKeyOptions = {},
): Promise<void> {
  await writeAtomic(path, `${formatPublicKey(publicKey)}\n`, 0o644, options.overwrite ?? false);
}

async function readKeyText(path: string, kind: "private" | "public", howToCreate: string): Promise<string> {
  const q = shellQuote(path);
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in the key's place must not hang the daemon at open().
    handle = await open(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (error) {
    const code = errnoCode(error);
    if (code === "ENOENT") throw new ConfigError(`key file ${path} does not exist; ${howToCreate}`);
    if (code === "EACCES")
      throw new ConfigError(`key file ${path} cannot be read by this user (permission denied)`);
    throw new ConfigError(`key file ${path} cannot be opened (${code ?? "error"})`);
  }
  try {
    // fstat of the open file: what we check is what we read (no race with a swapped path).
    const st = await handle.stat();
    if (!st.isFile()) throw new ConfigError(`key file ${path} is not a regular file`);
    const mode = st.mode & 0o7777;
    if (kind === "private") {
      if (mode & 0o077) {
        throw new ConfigError(
          `key file ${path} has mode ${octal(mode)}; a private key must not be accessible by group or others. ` +
            `Run: chmod 600 ${q}`,
        );
      }
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) {
        throw new ConfigError(
          `key file ${path} is owned by uid ${st.uid}, not by the user loading it (uid ${uid}); ` +
            `whoever owns it can read or replace the key. Run: chown ${uid} ${q}`,
        );
      }
    } else if (mode & 0o022) {
      throw new ConfigError(
        `key file ${path} has mode ${octal(mode)}; a pinned key must not be writable by group or others ` +
          `(they could replace the peer). Run: chmod go-w ${q}`,
      );
    }
    if (st.size > KEY_FILE_MAX_BYTES) {
      throw new ConfigError(
        `key file ${path} is ${st.size} bytes; a key file is at most ${KEY_FILE_MAX_BYTES} bytes (wrong file?)`,
      );
    }
    // One byte more than the limit, in case the file grew since fstat.
    const buffer = new Uint8Array(KEY_FILE_MAX_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) {
        throw new ConfigError(`key file ${path} is over ${KEY_FILE_MAX_BYTES} bytes (wrong file?)`);
      }
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length));
    } catch {
      throw new ConfigError(`key file ${path} is not UTF-8 text (wrong file?)`);
    } finally {
      buffer.fill(0);
    }
  } finally {
    await handle.close();
  }
}

async function writeAtomic(path: string, text: string, mode: number, overwrite: boolean): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.tmp-${randomBytes(6).toString("hex")}`);
  let handle: FileHandle;
  try {
    // O_EXCL: never write through a file or symlink someone planted under the temporary name.
    handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (error) {
    const code = errnoCode(error);
    if (code === "ENOENT") {
      throw new ConfigError(
        `directory ${dir} does not exist; create it with: mkdir -p -m 700 ${shellQuote(dir)}`,
      );
    }
    if (code === "EACCES")
      throw new ConfigError(`cannot write key file ${path}: directory ${dir} is not writable`);
    throw new ConfigError(`cannot write key file ${path} (${code ?? "error"})`);
  }
  try {
    try {
      await handle.chmod(mode); // exactly `mode`, whatever the umask
      await handle.writeFile(text, "utf-8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (overwrite) await rename(temp, path);
    else await linkNoClobber(temp, path);
    await syncDirectory(dir);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`cannot write key file ${path} (${errnoCode(error) ?? "error"})`);
  } finally {
    // After rename the temporary name is gone already; after link or a failure it is removed here.
    await unlink(temp).catch(() => {});
  }
}

/** Filesystems without hard links (vfat, some FUSE) refuse link() with one of these. */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/** link() fails with EEXIST if the target exists: an atomic "create, never replace". */
async function linkNoClobber(temp: string, path: string): Promise<void> {
  try {
    await link(temp, path);
    return;
  } catch (error) {
    const code = errnoCode(error);
    if (code === "EEXIST") throw alreadyExists(path);
    if (!code || !NO_HARD_LINKS.has(code)) throw error;
  }
  // No hard links here: check, then rename (not atomic against a concurrent writer, but no
  // existing key is replaced unless one appears in between).
  const absent = await lstat(path).then(
    () => false,
    (error) => errnoCode(error) === "ENOENT",
  );
  if (!absent) throw alreadyExists(path);
  await rename(temp, path);
}

function alreadyExists(path: string): ConfigError {
  return new ConfigError(
    `key file ${path} already exists; refusing to overwrite it (a new key ends every pairing made ` +
      "with the old one). Move it away first if you really mean to replace it.",
  );
}

async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | null = null;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself has happened.
  } finally {
    await handle?.close();
  }
}

function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

/** Quotes a path for a command the user may paste into a shell. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
