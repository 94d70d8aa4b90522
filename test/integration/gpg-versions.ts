/**
 * GnuPG 2.2 and 2.4 side by side for the split-GPG version matrix (gpg-matrix-*.test.ts): 2.2
 * is the host's (Debian 12, as on Raspberry Pi OS bookworm); 2.4 is Debian 13's, in the root
 * that test/setup/gnupg24-root.sh builds and caches outside the checkout.
 *
 * Trixie's gpg needs trixie's glibc, so every 2.4 program runs inside the root: a wrapper
 * script enters a private mount namespace, binds the host's /tmp (and /dev, /proc) into the
 * root and chroots. All test homes live under /tmp, so a path means the same on both sides, and
 * a gpg-agent 2.4 that gpgconf starts in there keeps its sockets where the host can connect.
 * gpg finds its agent by the home's socket, never by a program path on the host, so a 2.4
 * client really talks to the socket the test serves.
 *
 * Under CI=true a missing root is a failure, never a skip (the project rule).
 * Not part of the product.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { GpgTools } from "../../agent/services/gpg/gpg-tools.ts";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";

const ROOT_SCRIPT = join(import.meta.dir, "../setup/gnupg24-root.sh");

export interface GnupgVersion extends Required<GpgTools> {
  /** "2.2" or "2.4". */
  readonly label: "2.2" | "2.4";
  /** What `gpg --version` says, e.g. "2.4.7". */
  readonly version: string;
}

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function versionOf(gpg: string): Promise<string> {
  const r = await capture([gpg, "--version"]);
  const m = /^gpg \(GnuPG\) (\S+)/m.exec(dec(r.stdout));
  if (r.status !== 0 || !m) throw new Error(`${gpg} --version failed: ${dec(r.stderr)}`);
  return m[1]!;
}

export async function gnupg22(): Promise<GnupgVersion> {
  return { label: "2.2", gpg: "gpg", gpgconf: "gpgconf", version: await versionOf("gpg") };
}

/** Why 2.4 is not available here (a skip outside CI), or null when it is. */
export type Unavailable = { readonly reason: string };

/** A GnuPG 2.4 root could not be had (thrown under CI=true instead of skipping). */
export class Gnupg24Unavailable extends Error {
  override readonly name = "Gnupg24Unavailable";
}

/**
 * Builds (or reuses) the 2.4 root and returns wrappers for its gpg and gpgconf. Throws
 * Gnupg24Unavailable under CI=true when that is not possible; elsewhere returns why not, for the
 * caller to skip. `root` overrides where the root is cached (else $QUBES_AIR_GNUPG24_ROOT, else
 * the script's default).
 */
export async function gnupg24(o: { root?: string; ci?: boolean } = {}): Promise<GnupgVersion | Unavailable> {
  const ci = o.ci ?? process.env.CI === "true";
  const fail = (reason: string): Unavailable => {
    if (ci) throw new Gnupg24Unavailable(`GnuPG 2.4 root unavailable under CI: ${reason}`);
    return { reason };
  };
  if (process.getuid?.() !== 0) return fail("building and entering the GnuPG 2.4 root needs root");
  // capture() passes no environment through, so the override travels as the argument.
  const root = o.root ?? process.env.QUBES_AIR_GNUPG24_ROOT;
  const built = await capture(["sh", ROOT_SCRIPT, ...(root ? [root] : [])], { timeoutMs: 15 * 60_000 });
  if (built.status !== 0) return fail(`${ROOT_SCRIPT} failed: ${dec(built.stderr).slice(-2000)}`);
  const rootDir = dec(built.stdout).trim().split("\n").at(-1)!;
  // Beside the cached root (never a temp dir to leak): written whole, then renamed into place,
  // so test files starting at once never see half a script.
  const bin = `${rootDir}-bin`;
  mkdirSync(bin, { recursive: true });
  const wrap = (name: string) => {
    const path = join(bin, name);
    const tmp = `${path}.${process.pid}`;
    // $0 is the root; the program and its arguments follow. Mounts stay in the namespace.
    writeFileSync(
      tmp,
      `#!/bin/sh
exec unshare --mount --propagation private sh -c '
  r=$0; p=$1; shift
  mount --rbind /tmp "$r/tmp" && mount --rbind /dev "$r/dev" || exit 125
  mount -t proc proc "$r/proc" 2>/dev/null
  exec chroot "$r" "$p" "$@"' '${rootDir}' /usr/bin/${name} "$@"
`,
    );
    chmodSync(tmp, 0o755);
    renameSync(tmp, path);
    return path;
  };
  const gpg = wrap("gpg");
  const gpgconf = wrap("gpgconf");
  const version = await versionOf(gpg).catch((e: Error) => e.message);
  if (!version.startsWith("2.4")) return fail(`the root's gpg is not 2.4: ${version}`);
  return { label: "2.4", gpg, gpgconf, version };
}

export function isUnavailable(v: GnupgVersion | Unavailable): v is Unavailable {
  return "reason" in v;
}
