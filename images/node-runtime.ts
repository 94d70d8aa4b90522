/**
 * Debian's armhf Node.js for the USB armory (Bun has no 32-bit ARM target): the .debs of
 * `nodejs:armhf`, `libnode*`, their libraries and the arch-all builtins Node loads from fixed
 * paths (node-acorn, node-cjs-module-lexer, node-undici). They come from a directory the user
 * gives (--node-debs) or `apt-get download` (needs `dpkg --add-architecture armhf` once).
 * They are extracted with `dpkg-deb -x` (never installed or executed here) and planned into the
 * image: the binary and libraries under /opt/qubes-air/node (loaded through the wrapper's
 * --library-path, so the image's own libraries are never replaced), the builtins at
 * /usr/share/nodejs/... where Debian's node looks for them.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { ImageError, run } from "./common.ts";
import { PATHS } from "./device-files.ts";
import { dir, file, type RootEntry, symlink } from "./rootfs.ts";

/** Never taken from the .debs: the image's own C library must be used with its own loader. */
const SKIP =
  /^(libc6|libgcc1|gcc-\d+-base|debconf|debconf-2\.0|cdebconf|dpkg|install-info|ca-certificates|tzdata|perl-base|nodejs-doc|sensible-utils)(:armhf)?$/;

/** The builtins Debian's node is compiled to load (NODE_SHARED_BUILTIN_*_PATH). */
export const BUILTIN_DIRS = ["acorn", "acorn-walk", "cjs-module-lexer", "undici"] as const;

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
 * Node options the wrapper passes: Node 18 (Debian bookworm) has no global `crypto` object
 * without --experimental-global-webcrypto, and the agent's crypto libraries need it.
 */
export function nodeFlagsFor(version: string): string[] {
  const major = Number.parseInt(version, 10);
  return major > 0 && major < 19 ? ["--experimental-global-webcrypto"] : [];
}

export interface NodeTree {
  readonly root: string;
  /** "18.20.4+dfsg-1~deb12u2", from the nodejs .deb's name. */
  readonly version: string;
}

/** Extracts the .debs (dpkg-deb -x, as the user) and checks that an armhf node is there. */
export function extractNodeDebs(dpkgDeb: string, debs: readonly string[], root: string): NodeTree {
  const nodeDeb = debs.find((d) => /(^|\/)nodejs_[^/]*_armhf\.deb$/.test(d));
  if (!nodeDeb || !debs.some((d) => /(^|\/)libnode\d+_[^/]*_armhf\.deb$/.test(d))) {
    throw new ImageError(
      "the Node .debs must include nodejs_*_armhf.deb and libnode*_armhf.deb (apt-get download nodejs:armhf libnode108:armhf ...)",
    );
  }
  mkdirSync(root, { recursive: true });
  for (const deb of debs) run(dpkgDeb, ["-x", deb, root]);
  const node = join(root, "usr/bin/node");
  let head: Buffer;
  try {
    head = readFileSync(node).subarray(0, 20);
  } catch {
    throw new ImageError(`${nodeDeb} has no usr/bin/node`);
  }
  // ELF, 32-bit, little-endian, e_machine 40 = ARM.
  if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 1 || head[5] !== 1 || head.readUInt16LE(18) !== 40) {
    throw new ImageError(`${nodeDeb}: usr/bin/node is not a 32-bit ARM (armhf) program`);
  }
  for (const b of BUILTIN_DIRS) {
    if (!safeIsDir(join(root, "usr/share/nodejs", b))) {
      throw new ImageError(
        `the Node .debs lack /usr/share/nodejs/${b} (add node-acorn, node-cjs-module-lexer, node-undici)`,
      );
    }
  }
  const version = /nodejs_([^_]+)_armhf\.deb$/.exec(nodeDeb)![1]!.replace(/%3a/gi, ":");
  return { root, version };
}

function safeIsDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Mirrors a host directory tree into the plan (modes from the tree, owner root). */
function mirror(
  hostDir: string,
  imageDir: string,
  plan: RootEntry[],
  filter: (name: string) => boolean,
): void {
  plan.push(dir(imageDir, lstatSync(hostDir).mode & 0o7777));
  for (const name of readdirSync(hostDir).sort()) {
    if (!filter(name)) continue;
    const h = join(hostDir, name);
    const i = `${imageDir}/${name}`;
    const st = lstatSync(h);
    if (st.isSymbolicLink()) plan.push(symlink(i, readlinkSync(h)));
    else if (st.isDirectory()) mirror(h, i, plan, () => true);
    else if (st.isFile()) plan.push(file(i, st.mode & 0o7777, { file: h }));
  }
}

/**
 * The plan for the image: the binary at PREFIX/bin/node and every shared library of the .debs in
 * one flat PREFIX/lib (given to the loader with --library-path); the builtins at their fixed paths
 * unless the image already has them.
 */
export function nodePlan(tree: NodeTree, imageHasBuiltins: ReadonlySet<string>): RootEntry[] {
  const p = PATHS.nodePrefix;
  const plan: RootEntry[] = [dir("/opt/qubes-air"), dir(p), dir(`${p}/bin`), dir(`${p}/lib`)];
  plan.push(file(`${p}/bin/node`, 0o755, { file: join(tree.root, "usr/bin/node") }));
  const seen = new Set<string>();
  for (const sub of ["usr/lib/arm-linux-gnueabihf", "lib/arm-linux-gnueabihf"]) {
    const hostDir = join(tree.root, sub);
    if (!safeIsDir(hostDir)) continue;
    for (const name of readdirSync(hostDir).sort()) {
      if (!/\.so(\.|$)/.test(name) || seen.has(name)) continue;
      seen.add(name);
      const st = lstatSync(join(hostDir, name));
      if (st.isSymbolicLink()) plan.push(symlink(`${p}/lib/${name}`, readlinkSync(join(hostDir, name))));
      else if (st.isFile())
        plan.push(file(`${p}/lib/${name}`, st.mode & 0o7777, { file: join(hostDir, name) }));
    }
  }
  for (const b of BUILTIN_DIRS) {
    if (imageHasBuiltins.has(b)) continue;
    mirror(
      join(tree.root, "usr/share/nodejs", b),
      `/usr/share/nodejs/${b}`,
      plan,
      (n) => !n.endsWith(".d.ts"),
    );
  }
  return plan;
}
