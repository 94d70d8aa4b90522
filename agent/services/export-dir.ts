/**
 * The export directory of `qubesair.CopyFrom` (docs/agent.md "Built-in services"): the one
 * directory a caller may read files from, and the agent's own secrets that it never sends.
 *
 * - A requested path is relative to the export directory; an absolute one must lie inside it.
 *   Empty and "." components are skipped; ".." is refused; so is the export directory itself.
 * - The export directory is opened with O_NOFOLLOW (it must not be a link), and must not be,
 *   contain or lie inside a protected path once links are resolved.
 * - Each directory on the way is opened with O_DIRECTORY|O_NOFOLLOW through its parent's open
 *   descriptor (/proc/self/fd/N/name), and the copy walks below them the same way
 *   (calls/qfile-pack.ts `confined`): no link, and no directory swapped for a link between a
 *   check and its use, leads out. A requested path that is itself a link is refused.
 * - Every entry is compared by device and inode with the protected set (protectedPaths): the state
 *   directory and its key files, the GnuPG homes, the audit log, the policy directory and the
 *   configuration file. That also catches bind mounts; a regular file with several links is
 *   compared with every file under the protected directories (hard links).
 * Must never: open a caller's path by a name that a link could redirect, or let any byte of a
 * protected file out, whatever the configuration or the policy.
 */
import type { BigIntStats } from "node:fs";
import { constants as FS } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as fsp from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import type { ConfinedEntry, Confinement } from "../../calls/qfile-pack.ts";
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../../core/qrexec/qfile.ts";
import { NameFlags, sanitizeNameForDisplay, validateSymlink } from "../../core/qrexec/qfile-names.ts";
import { COPY_FROM_MAX_OPEN_DIRS } from "../../core/qrexec/services.ts";
import { type ExportConfig, protectedPaths, within } from "../protected-paths.ts";

/** Why a request was refused: a fixed word for the device's log (never the caller's bytes). */
export type RefusalCode =
  | "outside"
  | "dot-dot"
  | "export-root"
  | "link"
  | "protected"
  | "missing"
  | "unreadable"
  | "export-dir"
  | "too-many";

/** A request the export directory does not allow; the message is for the caller's stderr. */
export class ExportRefused extends Error {
  override readonly name = "ExportRefused";
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

/** Entries the hard-link check lists under the protected directories before it gives up. */
const HARDLINK_SCAN_MAX_ENTRIES = 20_000;
const DIR_FLAGS = FS.O_RDONLY | FS.O_DIRECTORY | FS.O_NOFOLLOW;

function shown(request: string): string {
  return `"${sanitizeNameForDisplay(Buffer.from(request))}"`;
}

const identity = (st: { dev: bigint; ino: bigint }) => `${st.dev}:${st.ino}`;

async function realIdentity(path: string): Promise<{ id: string; real: string } | null> {
  try {
    const st = await fsp.stat(path, { bigint: true });
    return { id: identity(st), real: await fsp.realpath(path) };
  } catch {
    return null; // missing or unreadable: nothing there to protect, or nothing we could send
  }
}

/**
 * One call's view of the export directory: open it with ExportTree.open, resolve() each
 * requested path, give the tree to packQfile/scanTree as `confined`, and close() it afterwards.
 */
export class ExportTree implements Confinement {
  private readonly handles: FileHandle[] = [];
  /** Directories opened on the requests' way, by their path below the export directory. */
  private readonly opened = new Map<string, FileHandle>();
  private hardlinks: Map<string, string> | null = null;

  private constructor(
    private readonly exportDir: string,
    private readonly realDir: string,
    private readonly root: FileHandle,
    private readonly protect: ReadonlyMap<string, string>,
    private readonly protectedDirs: readonly { path: string; what: string }[],
  ) {
    this.handles.push(root);
  }

  static async open(c: ExportConfig, env: NodeJS.ProcessEnv = process.env): Promise<ExportTree> {
    const protect = new Map<string, string>();
    const dirs: { path: string; what: string }[] = [];
    const reals: { real: string; what: string }[] = [];
    for (const p of protectedPaths(c, env)) {
      const r = await realIdentity(p.path);
      if (!r) continue;
      if (!protect.has(r.id)) protect.set(r.id, p.what);
      reals.push({ real: r.real, what: p.what });
      if ((await fsp.stat(r.real).catch(() => null))?.isDirectory())
        dirs.push({ path: r.real, what: p.what });
    }
    const dir = resolve(c.exportDir);
    let root: FileHandle;
    try {
      root = await fsp.open(dir, DIR_FLAGS);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT") {
        throw new ExportRefused(
          "export-dir",
          `the export directory ${dir} does not exist on the device; put what may be copied out there`,
        );
      }
      if (code === "ELOOP" || code === "ENOTDIR") {
        throw new ExportRefused(
          "export-dir",
          `the export directory ${dir} is a symbolic link or not a directory; set exportDir to a real directory`,
        );
      }
      throw new ExportRefused("export-dir", `cannot open the export directory ${dir} (${code ?? "error"})`);
    }
    const real = await fsp.realpath(`/proc/self/fd/${root.fd}`).catch(() => null);
    const conflict =
      real === null
        ? "cannot be resolved (is /proc mounted?)"
        : reals
            .map((p) =>
              within(real, p.real)
                ? `is ${p.what} or lies inside it`
                : within(p.real, real)
                  ? `contains ${p.what}`
                  : null,
            )
            .find((x) => x !== null);
    if (real === null || conflict) {
      await root.close().catch(() => {});
      throw new ExportRefused(
        "export-dir",
        `the export directory ${dir} ${conflict} once links are resolved; the device sends nothing until exportDir names a directory of its own`,
      );
    }
    return new ExportTree(dir, real, root, protect, dirs);
  }

  /**
   * The I/O path of one requested file or directory: its last component under the open
   * descriptor of its parent (every directory on the way opened without following links).
   */
  async resolve(request: string): Promise<string> {
    let rest = request;
    if (isAbsolute(request)) {
      // A plain prefix test on the text as sent: ".." after the prefix is refused below.
      const base = [this.exportDir, this.realDir].find((d) => request === d || request.startsWith(`${d}/`));
      if (base === undefined) {
        throw new ExportRefused(
          "outside",
          `${shown(request)} is outside the export directory ${this.exportDir}; name a path inside it (relative paths start there)`,
        );
      }
      rest = request.slice(base.length);
    }
    const parts = rest.split("/").filter((c) => c !== "" && c !== ".");
    if (parts.includes("..")) {
      throw new ExportRefused(
        "dot-dot",
        `${shown(request)}: ".." is not allowed; name a path inside the export directory`,
      );
    }
    const last = parts.pop();
    if (last === undefined) {
      throw new ExportRefused(
        "export-root",
        `${shown(request)} is the export directory itself; name the files or directories inside it`,
      );
    }
    let dir = this.root;
    for (const [i, c] of parts.entries()) {
      const key = parts.slice(0, i + 1).join("/");
      const known = this.opened.get(key);
      if (known) {
        dir = known;
        continue;
      }
      if (this.opened.size >= COPY_FROM_MAX_OPEN_DIRS) {
        throw new ExportRefused(
          "too-many",
          `the paths go through more than ${COPY_FROM_MAX_OPEN_DIRS} directories; ask for fewer at a time, or for their parent`,
        );
      }
      const at = `/proc/self/fd/${dir.fd}/${c}`;
      let h: FileHandle;
      try {
        h = await fsp.open(at, DIR_FLAGS);
      } catch (error) {
        throw await this.openFailure(request, at, error);
      }
      this.handles.push(h);
      this.opened.set(key, h);
      await this.checkStat(await h.stat({ bigint: true }), request);
      dir = h;
    }
    const path = `/proc/self/fd/${dir.fd}/${last}`;
    let st: BigIntStats;
    try {
      st = await fsp.lstat(path, { bigint: true });
    } catch (error) {
      throw await this.openFailure(request, path, error);
    }
    if ((Number(st.mode) & S_IFMT) === S_IFLNK) {
      throw new ExportRefused(
        "link",
        `${shown(request)} is a symbolic link; the device follows no links out of the export directory`,
      );
    }
    await this.checkStat(st, request);
    return path;
  }

  /**
   * Confinement.check: every entry the copy walks, before anything of it is read or sent. A link
   * is sent as a link, never followed, but only if it stays inside the tree being sent (the
   * qfile rule), so no link that points out leaves either, even one swapped in after the scan.
   */
  async check(e: ConfinedEntry): Promise<void> {
    const name = e.rel.toString("utf8");
    await this.checkStat(e.st, name);
    if ((Number(e.st.mode) & S_IFMT) !== S_IFLNK) return;
    const target = await fsp.readlink(e.path, { encoding: "buffer" }).catch(() => null);
    const flags = NameFlags.ALLOW_UNSAFE_CHARACTERS | NameFlags.ALLOW_NON_CANONICAL_SYMLINKS;
    if (target === null || validateSymlink(e.rel, target, flags) !== 0) {
      throw new ExportRefused(
        "link",
        `${shown(name)} is a symbolic link that points out of what is being sent`,
      );
    }
  }

  async close(): Promise<void> {
    for (const h of this.handles.splice(0).reverse()) await h.close().catch(() => {});
  }

  private async checkStat(st: BigIntStats, name: string): Promise<void> {
    const what = this.protect.get(identity(st));
    if (what !== undefined) {
      throw new ExportRefused("protected", `${shown(name)} is ${what}; the device never sends it`);
    }
    if ((Number(st.mode) & S_IFMT) !== S_IFREG || st.nlink < 2n) return;
    const linked = (await this.hardlinkIndex()).get(identity(st));
    if (linked !== undefined) {
      throw new ExportRefused(
        "protected",
        `${shown(name)} is a hard link to a file in ${linked}; the device never sends it`,
      );
    }
  }

  /** Regular files with several links under the protected directories, listed once per call. */
  private async hardlinkIndex(): Promise<Map<string, string>> {
    if (this.hardlinks) return this.hardlinks;
    const index = new Map<string, string>();
    const scanned = new Set<string>();
    let seen = 0;
    const scan = async (dir: string, what: string): Promise<void> => {
      const st = await fsp.lstat(dir, { bigint: true }).catch(() => null);
      if (!st || scanned.has(identity(st))) return;
      scanned.add(identity(st));
      const names = await fsp.readdir(dir).catch(() => [] as string[]);
      for (const n of names) {
        if (++seen > HARDLINK_SCAN_MAX_ENTRIES) {
          throw new ExportRefused(
            "protected",
            "a requested file has several hard links and the protected directories are too large to compare it with",
          );
        }
        const p = join(dir, n);
        const st = await fsp.lstat(p, { bigint: true }).catch(() => null);
        if (!st) continue;
        const type = Number(st.mode) & S_IFMT;
        if (type === S_IFDIR) await scan(p, what);
        else if (type === S_IFREG && st.nlink > 1n && !index.has(identity(st))) index.set(identity(st), what);
      }
    };
    // The innermost directory first, so a file is named by the most specific of them.
    const dirs = [...this.protectedDirs].sort((a, b) => b.path.length - a.path.length);
    for (const d of dirs) await scan(d.path, d.what);
    this.hardlinks = index;
    return index;
  }

  private async openFailure(request: string, at: string, error: unknown): Promise<ExportRefused> {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") {
      return new ExportRefused("missing", `${shown(request)} does not exist in the export directory`);
    }
    const st = await fsp.lstat(at).catch(() => null);
    if (st?.isSymbolicLink()) {
      return new ExportRefused(
        "link",
        `${shown(request)} goes through a symbolic link; the device follows no links out of the export directory`,
      );
    }
    return new ExportRefused("unreadable", `cannot open ${shown(request)} (${code ?? "error"})`);
  }
}
