/**
 * Reads and edits an ext4 filesystem inside an image file with `debugfs` ("IMG?offset=N"):
 * no root, no mount, no loop device. Writes are collected in an Ext4Batch and run in one
 * `debugfs -w -f SCRIPT`; every file, directory and symlink gets its mode, owner and group set
 * explicitly with `sif` (debugfs `write` copies the builder's own uid and the source file's mode).
 * debugfs exits 0 even when a command fails, so its stderr is checked line by line, and every
 * written path is stat'ed again afterwards.
 * Must never: write a path that could be misparsed by debugfs (spaces, quotes, control bytes).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { ImageError, run } from "./common.ts";

export type InodeType = "regular" | "directory" | "symlink" | "other";

export interface InodeInfo {
  readonly type: InodeType;
  /** Permission bits (& 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** For fast symlinks. */
  readonly linkTarget?: string;
}

const SAFE_PATH = /^\/[A-Za-z0-9._@+,:=~/-]*$/;

export function checkPath(path: string): string {
  if (!SAFE_PATH.test(path) || path.includes("//") || path.split("/").some((c) => c === "..")) {
    throw new ImageError(`refusing an unusual path for debugfs: ${JSON.stringify(path)}`);
  }
  return path;
}

/** Parses the output of debugfs `stat` (null when empty: the path does not exist). */
export function parseStat(text: string): InodeInfo | null {
  const m = /Type:\s+(\S+)\s+Mode:\s+([0-7]+)/.exec(text);
  if (!m) return null;
  const u = /User:\s+(\d+)\s+Group:\s+(\d+)(?:\s+Project:\s+\d+)?\s+Size:\s+(\d+)/.exec(text);
  const t = m[1]!;
  const type: InodeType =
    t === "regular" || t === "directory" || t === "symlink" ? (t as InodeType) : "other";
  const link = /Fast link dest: "((?:[^"\\]|\\.)*)"/.exec(text);
  return {
    type,
    mode: Number.parseInt(m[2]!, 8) & 0o7777,
    uid: Number(u?.[1] ?? -1),
    gid: Number(u?.[2] ?? -1),
    size: Number(u?.[3] ?? 0),
    ...(link ? { linkTarget: link[1]! } : {}),
  };
}

/** Splits the stdout of `debugfs -f` into each command's output ("debugfs: CMD" echo lines). */
export function splitScriptOutput(stdout: string): { command: string; output: string }[] {
  const parts: { command: string; output: string }[] = [];
  for (const line of stdout.split("\n")) {
    if (line.startsWith("debugfs: ")) parts.push({ command: line.slice(9), output: "" });
    else if (parts.length > 0) parts[parts.length - 1]!.output += `${line}\n`;
  }
  return parts;
}

/** stderr lines that are not the version banner. */
export function debugfsErrors(stderr: string): string[] {
  return stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^debugfs \d+\.\d+/.test(l));
}

export class Ext4Image {
  constructor(
    readonly debugfs: string,
    readonly image: string,
    readonly offset: number,
  ) {}

  get spec(): string {
    return `${this.image}?offset=${this.offset}`;
  }

  private script(commands: readonly string[], write: boolean): { stdout: string; errors: string[] } {
    const dir = mkdtempSync(join(tmpdir(), "qa-debugfs-"));
    try {
      const file = join(dir, "script");
      writeFileSync(file, `${commands.join("\n")}\n`);
      const r = run(this.debugfs, [...(write ? ["-w"] : []), "-f", file, this.spec], { allowFail: true });
      if (r.status !== 0) throw new ImageError(`debugfs cannot open ${this.spec}: ${r.stderr.trim()}`);
      return { stdout: r.stdout.toString("latin1"), errors: debugfsErrors(r.stderr) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Stats many paths in one run; absent paths map to null. */
  statMany(paths: readonly string[]): Map<string, InodeInfo | null> {
    const result = new Map<string, InodeInfo | null>();
    if (paths.length === 0) return result;
    const { stdout } = this.script(
      paths.map((p) => `stat ${checkPath(p)}`),
      false,
    );
    const outputs = splitScriptOutput(stdout);
    for (const [i, p] of paths.entries()) result.set(p, parseStat(outputs[i]?.output ?? ""));
    return result;
  }

  stat(path: string): InodeInfo | null {
    return this.statMany([path]).get(path) ?? null;
  }

  /** Follows symlinks (absolute, or relative to their directory) to the final path. */
  resolve(path: string, depth = 0): { path: string; info: InodeInfo } | null {
    if (depth > 8) throw new ImageError(`too many symlinks at ${path} in the image`);
    const info = this.stat(path);
    if (!info) return null;
    if (info.type !== "symlink") return { path, info };
    if (info.linkTarget === undefined) throw new ImageError(`${path}: long symlinks are not supported`);
    const target = posix.normalize(
      info.linkTarget.startsWith("/") ? info.linkTarget : posix.join(posix.dirname(path), info.linkTarget),
    );
    return this.resolve(target, depth + 1);
  }

  /** The content of a regular file (symlinks followed), or null when absent. */
  readFile(path: string): Buffer | null {
    const found = this.resolve(checkPath(path));
    if (!found) return null;
    if (found.info.type !== "regular") throw new ImageError(`${path} in the image is not a regular file`);
    const r = run(this.debugfs, ["-R", `cat ${found.path}`, this.spec], { allowFail: true });
    const out = r.stdout;
    if (out.length !== found.info.size) {
      throw new ImageError(`reading ${path} from the image gave ${out.length} of ${found.info.size} bytes`);
    }
    return out;
  }

  /** Free space in bytes (superblock counters). */
  freeBytes(): number {
    const r = run(this.debugfs, ["-R", "stats", this.spec], { allowFail: true });
    const text = r.stdout.toString("utf8");
    const free = /^Free blocks:\s+(\d+)/m.exec(text);
    const size = /^Block size:\s+(\d+)/m.exec(text);
    if (!free || !size) {
      throw new ImageError(`${this.spec} is not an ext2/3/4 filesystem (debugfs: ${r.stderr.trim()})`);
    }
    return Number(free[1]) * Number(size[1]);
  }

  /** Runs a batch of writes; throws with debugfs's complaints if any command failed. */
  apply(batch: Ext4Batch): void {
    if (batch.commands.length === 0) return;
    const { errors } = this.script(batch.commands, true);
    if (errors.length > 0) {
      throw new ImageError(`writing into ${this.spec} failed: ${errors.slice(0, 5).join("; ")}`);
    }
    const after = this.statMany(batch.expected.map((e) => e.path));
    for (const e of batch.expected) {
      const got = after.get(e.path);
      const ok =
        got &&
        got.type === e.type &&
        got.uid === e.uid &&
        got.gid === e.gid &&
        (e.type === "symlink" || got.mode === e.mode) &&
        (e.size === undefined || got.size === e.size);
      if (!ok)
        throw new ImageError(`${e.path} was not written correctly into the image (${JSON.stringify(got)})`);
    }
  }
}

export interface Owner {
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
}

const TYPE_BITS: Record<"regular" | "directory" | "symlink", number> = {
  regular: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
};

/** A list of debugfs write commands, and what each path must look like afterwards. */
export class Ext4Batch {
  readonly commands: string[] = [];
  readonly expected: {
    path: string;
    type: "regular" | "directory" | "symlink";
    mode: number;
    uid: number;
    gid: number;
    size?: number;
  }[] = [];

  private own(path: string, type: "regular" | "directory" | "symlink", o: Owner, size?: number): void {
    const uid = o.uid ?? 0;
    const gid = o.gid ?? 0;
    const mode = type === "symlink" ? 0o777 : o.mode & 0o7777;
    this.commands.push(
      `sif ${path} mode 0${(TYPE_BITS[type] | mode).toString(8)}`,
      `sif ${path} uid ${uid}`,
      `sif ${path} gid ${gid}`,
    );
    this.expected.push({ path, type, mode, uid, gid, ...(size === undefined ? {} : { size }) });
  }

  mkdir(path: string, o: Owner): this {
    this.commands.push(`mkdir ${checkPath(path)}`);
    this.own(path, "directory", o);
    return this;
  }

  /** Writes the host file `source` (size bytes) as `path`. The path must not exist (rm it first). */
  write(path: string, source: string, size: number, o: Owner): this {
    if (/[\s"\\]/.test(source)) throw new ImageError(`unusual temporary path ${source}`);
    this.commands.push(`write ${source} ${checkPath(path)}`);
    this.own(path, "regular", o, size);
    return this;
  }

  symlink(path: string, target: string, o: Omit<Owner, "mode"> = {}): this {
    if (!/^[A-Za-z0-9._@+,:=~/-]+$/.test(target)) throw new ImageError(`unusual symlink target ${target}`);
    this.commands.push(`symlink ${checkPath(path)} ${target}`);
    this.own(path, "symlink", { mode: 0o777, ...o });
    return this;
  }

  /** Unlinks a file or symlink (not a directory). */
  rm(path: string): this {
    this.commands.push(`rm ${checkPath(path)}`);
    return this;
  }
}
