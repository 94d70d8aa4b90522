/**
 * Debian's armhf Node.js for the USB armory (Bun has no 32-bit ARM target): the .debs of
 * `nodejs:armhf`, `libnode*`, their libraries and the arch-all builtins Node loads from fixed
 * paths (node-acorn, node-cjs-module-lexer, node-undici). They come from a directory the user
 * gives (--node-debs) or `apt-get download` (needs `dpkg --add-architecture armhf` once).
 * They go into the image as they are, beside the agent package, and are installed with it at
 * first boot (first-boot-install.ts), each only where the image does not have that package yet.
 * Nothing from them is run here.
 */
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ImageError, run } from "./common.ts";

/** Never taken from the .debs: the image's own C library must be used with its own loader. */
const SKIP =
  /^(libc6|libgcc1|gcc-\d+-base|debconf|debconf-2\.0|cdebconf|dpkg|install-info|ca-certificates|tzdata|perl-base|nodejs-doc|sensible-utils)(:armhf)?$/;

/** Parses `apt-cache depends` output: package -> the packages it depends on (first alternative). */
export function parseAptDepends(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  let current: string[] | null = null;
  let pendingVirtual = false;
  let inAlternatives = false;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (!line.startsWith(" ")) {
      current = [];
      deps.set(line.trim(), current);
      pendingVirtual = false;
      inAlternatives = false;
      continue;
    }
    const m = /^\s+(\|)?(Pre)?Depends:\s+(\S+)/.exec(line);
    if (m && current) {
      const skipAlt = inAlternatives;
      inAlternatives = m[1] === "|";
      pendingVirtual = false;
      if (skipAlt) continue;
      const name = m[3]!;
      if (name.startsWith("<")) pendingVirtual = true;
      else current.push(name);
      continue;
    }
    if (pendingVirtual && current && /^\s{4}\S/.test(line)) {
      current.push(line.trim());
      pendingVirtual = false;
    }
  }
  return deps;
}

/** nodejs:armhf and everything it needs from the archive, except the base system (SKIP). */
export function resolveNodePackages(aptCache: string): string[] {
  const seen = new Set<string>();
  let frontier = ["nodejs:armhf"];
  while (frontier.length > 0) {
    const r = run(
      aptCache,
      [
        "depends",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
        ...frontier,
      ],
      { allowFail: true },
    );
    const parsed = parseAptDepends(r.stdout.toString("utf8"));
    if (r.status !== 0 || (seen.size === 0 && !parsed.has("nodejs:armhf"))) {
      throw new ImageError(
        "Debian's armhf Node packages are not available from apt here. Either run once: " +
          "sudo dpkg --add-architecture armhf && sudo apt-get update, or give --node-debs DIR " +
          "(a directory with nodejs, libnode*, their libraries and node-acorn, node-cjs-module-lexer, node-undici .debs)",
      );
    }
    for (const p of frontier) seen.add(p);
    const next = new Set<string>();
    for (const list of parsed.values()) {
      for (const d of list) {
        if (
          SKIP.test(d) ||
          /^nodejs(:|$)/.test(d) ||
          d.endsWith(":arm64") ||
          d.endsWith(":amd64") ||
          d.endsWith(":i386")
        )
          continue;
        if (!seen.has(d)) next.add(d);
      }
    }
    frontier = [...next];
  }
  return [...seen].sort();
}

/** Downloads the .debs into `dir` (kept as a cache); returns their paths. */
export function downloadNodeDebs(tools: { aptGet: string; aptCache: string }, into: string): string[] {
  mkdirSync(into, { recursive: true });
  const packages = resolveNodePackages(tools.aptCache);
  const r = run(tools.aptGet, ["download", ...packages], { allowFail: true, cwd: into });
  if (r.status !== 0) {
    throw new ImageError(
      `apt-get download of the armhf Node packages failed: ${r.stderr.trim().split("\n").slice(-2).join("; ")}`,
    );
  }
  return listDebs(into);
}

export function listDebs(dirPath: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dirPath);
  } catch {
    throw new ImageError(`--node-debs ${dirPath}: not a readable directory`);
  }
  return names
    .filter((n) => n.endsWith(".deb"))
    .sort()
    .map((n) => join(dirPath, n));
}

/**
 * The armhf Node packages' version (from the nodejs .deb's name), after checking the set holds
 * nodejs and libnode for armhf: the agent package's Depends (nodejs) must be met offline at first
 * boot, where the device usually has no route to a Debian mirror.
 */
export function nodeDebsVersion(debs: readonly string[]): string {
  const nodeDeb = debs.find((d) => /(^|\/)nodejs_[^/]*_armhf\.deb$/.test(d));
  if (!nodeDeb || !debs.some((d) => /(^|\/)libnode\d+_[^/]*_armhf\.deb$/.test(d))) {
    throw new ImageError(
      "the Node .debs must include nodejs_*_armhf.deb and libnode*_armhf.deb (apt-get download nodejs:armhf libnode108:armhf ...)",
    );
  }
  for (const b of ["node-acorn", "node-cjs-module-lexer", "node-undici"]) {
    if (!debs.some((d) => new RegExp(`(^|/)${b}_[^/]*_all\\.deb$`).test(d))) {
      throw new ImageError(`the Node .debs lack ${b} (Debian's node loads it from a fixed path)`);
    }
  }
  return /nodejs_([^_]+)_armhf\.deb$/.exec(nodeDeb)![1]!.replace(/%3a/gi, ":");
}
