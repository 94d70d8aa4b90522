/**
 * Running the device's own gpg tools for the split-GPG services: a bounded capture of a short
 * command's output, the agent's sockets (started with `gpgconf --launch gpg-agent`), and the
 * device's keyring index (core/gpg/keyring.ts), cached until the keyring files change.
 * Must never: pass a client's string to one of these commands, or inherit the caller's GnuPG
 * environment (GNUPGHOME, GPG_AGENT_INFO): the home is always given with --homedir.
 */

import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { concatBytes } from "../../../core/bytes.ts";
import { type KeyringIndex, parseSecretKeyListing } from "../../../core/gpg/keyring.ts";
import { exitStatusOf, platform } from "../../../platform/index.ts";
import type { ByteSource } from "../../../transport/transport.ts";

export interface GpgTools {
  /** gpg and gpgconf programs (default "gpg", "gpgconf" from PATH). */
  readonly gpg?: string;
  readonly gpgconf?: string;
}

/** The environment every gpg child gets: nothing from the caller but PATH and HOME. */
export function gpgEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/", LC_ALL: "C" };
}

export interface Captured {
  readonly status: number;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
}

async function drain(src: ByteSource | null, max: number): Promise<Uint8Array> {
  if (!src) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const c = await src.read();
    if (c === null) break;
    if (n + c.length > max) {
      src.close();
      throw new Error("command output over its limit");
    }
    parts.push(c);
    n += c.length;
  }
  return concatBytes(parts);
}

/** Runs a short command to completion (stdin from `input` or empty), output capped. */
export async function capture(
  argv: readonly string[],
  opts: { input?: Uint8Array; maxBytes?: number; timeoutMs?: number } = {},
): Promise<Captured> {
  const child = await platform.spawn(argv, { env: gpgEnv() });
  const max = opts.maxBytes ?? 16 * 1024 * 1024;
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  try {
    const feed = (async () => {
      if (opts.input && opts.input.length > 0) await child.stdin?.write(opts.input);
      await child.stdin?.closeWrite();
    })().catch(() => {});
    const [stdout, stderr] = await Promise.all([drain(child.stdout, max), drain(child.stderr, max)]);
    await feed;
    return { status: exitStatusOf(await child.exited), stdout, stderr };
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

export interface AgentSockets {
  /** The restricted socket (agent-extra-socket) every client command goes to. */
  readonly extra: string;
  /** The normal socket, used only for a one-off HAVEKEY/KEYINFO --list. */
  readonly normal: string;
}

const socketCache = new Map<string, Promise<AgentSockets>>();

/** Starts the agent of `home` if needed and returns its sockets (cached per home). */
export function agentSockets(home: string, tools: GpgTools = {}, relaunch = false): Promise<AgentSockets> {
  const key = `${tools.gpgconf ?? "gpgconf"}\0${home}`;
  const cached = socketCache.get(key);
  if (cached && !relaunch) return cached;
  const p = (async () => {
    const gpgconf = tools.gpgconf ?? "gpgconf";
    const launched = await capture([gpgconf, "--homedir", home, "--launch", "gpg-agent"]);
    if (launched.status !== 0) throw new Error("gpgconf --launch gpg-agent failed");
    const dirs = await capture([gpgconf, "--homedir", home, "--list-dirs"]);
    if (dirs.status !== 0) throw new Error("gpgconf --list-dirs failed");
    const found = new Map<string, string>();
    for (const l of text(dirs.stdout).split("\n")) {
      const i = l.indexOf(":");
      if (i > 0) found.set(l.slice(0, i), decodeURIComponent(l.slice(i + 1)));
    }
    const extra = found.get("agent-extra-socket");
    const normal = found.get("agent-socket");
    if (!extra || !normal) throw new Error("gpgconf --list-dirs gave no agent sockets");
    return { extra, normal };
  })();
  socketCache.set(key, p);
  p.catch(() => socketCache.delete(key));
  return p;
}

interface KeyringCacheEntry {
  readonly stamp: string;
  readonly index: KeyringIndex;
}
const keyringCache = new Map<string, KeyringCacheEntry>();

async function keyringStamp(home: string): Promise<string> {
  const parts: string[] = [];
  for (const f of ["pubring.kbx", "pubring.gpg", "private-keys-v1.d"]) {
    const s = await fsp.stat(join(home, f)).catch(() => null);
    parts.push(s ? `${s.mtimeMs}:${s.size}:${s.ino}` : "-");
  }
  return parts.join("|");
}

/** The device keyring of `home`, re-read whenever its key files changed. */
export async function loadKeyring(home: string, tools: GpgTools = {}): Promise<KeyringIndex> {
  const stamp = await keyringStamp(home);
  const cacheKey = `${tools.gpg ?? "gpg"}\0${home}`;
  const hit = keyringCache.get(cacheKey);
  if (hit && hit.stamp === stamp) return hit.index;
  const out = await capture([
    tools.gpg ?? "gpg",
    "--homedir",
    home,
    "--batch",
    "--no-tty",
    "--with-colons",
    "--fixed-list-mode",
    "--with-keygrip",
    "--list-secret-keys",
  ]);
  if (out.status !== 0 && out.status !== 2) throw new Error("gpg --list-secret-keys failed");
  const index = parseSecretKeyListing(text(out.stdout));
  keyringCache.set(cacheKey, { stamp, index });
  return index;
}
