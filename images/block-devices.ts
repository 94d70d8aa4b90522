/**
 * What the flasher knows about the machine's disks, parsed from `lsblk -J -b -o ...` JSON,
 * /proc/self/mountinfo and /proc/swaps. Pure parsers, lenient about util-linux versions (booleans
 * as true/"1"/1, sizes as numbers or strings, `mountpoint` before 2.37, `mountpoints` after) but
 * strict about shape: anything unexpected is a clear BlockInfoError, never a guess.
 */

export class BlockInfoError extends Error {
  override readonly name = "BlockInfoError";
}

export interface BlockDevice {
  name: string;
  kname: string;
  path: string;
  /** "8:16"; null when lsblk did not report it. */
  majMin: string | null;
  /** disk, part, loop, rom, crypt, lvm, raid1, dm, mpath, ... */
  type: string;
  size: number;
  ro: boolean;
  rm: boolean;
  hotplug: boolean;
  tran: string | null;
  model: string | null;
  serial: string | null;
  vendor: string | null;
  fstype: string | null;
  mountpoints: string[];
  children: BlockDevice[];
}

/** The lsblk columns we ask for (util-linux >= 2.37 for MOUNTPOINTS; see LSBLK_COLUMNS_OLD). */
export const LSBLK_COLUMNS =
  "NAME,KNAME,PATH,MAJ:MIN,TYPE,SIZE,RO,RM,HOTPLUG,TRAN,MODEL,SERIAL,VENDOR,FSTYPE,MOUNTPOINTS";
export const LSBLK_COLUMNS_OLD = LSBLK_COLUMNS.replace("MOUNTPOINTS", "MOUNTPOINT");

function bool(v: unknown, field: string): boolean {
  if (v === true || v === 1 || v === "1") return true;
  if (v === false || v === 0 || v === "0" || v === null || v === undefined) return false;
  throw new BlockInfoError(`lsblk: ${field} is ${JSON.stringify(v)}, not a boolean`);
}

function str(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "string") return String(v);
  const t = v.trim();
  return t === "" ? null : t;
}

function size(v: unknown, name: string): number {
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new BlockInfoError(`lsblk: size of ${name} is ${JSON.stringify(v)} (run lsblk with -b)`);
  }
  return n;
}

function device(raw: unknown, depth: number): BlockDevice {
  if (depth > 16) throw new BlockInfoError("lsblk: device tree nested too deeply");
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new BlockInfoError("lsblk: bad entry");
  const r = raw as Record<string, unknown>;
  const name = str(r.name);
  const type = str(r.type);
  if (!name || !type) throw new BlockInfoError("lsblk: entry without name or type");
  const kname = str(r.kname) ?? name;
  const mounts = Array.isArray(r.mountpoints) ? r.mountpoints : [r.mountpoint];
  const children = r.children === undefined ? [] : r.children;
  if (!Array.isArray(children)) throw new BlockInfoError(`lsblk: children of ${name} is not a list`);
  return {
    name,
    kname,
    path: str(r.path) ?? `/dev/${name}`,
    majMin: str(r["maj:min"]),
    type,
    size: size(r.size, name),
    ro: bool(r.ro, "ro"),
    rm: bool(r.rm, "rm"),
    hotplug: bool(r.hotplug, "hotplug"),
    tran: str(r.tran),
    model: str(r.model),
    serial: str(r.serial),
    vendor: str(r.vendor),
    fstype: str(r.fstype),
    mountpoints: mounts.flatMap((m) => (typeof m === "string" && m !== "" ? [m] : [])),
    children: children.map((c) => device(c, depth + 1)),
  };
}

/** Parses `lsblk -J -b` output into the device forest (top level = disks, loops, roms). */
export function parseLsblk(json: string): BlockDevice[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new BlockInfoError("lsblk output is not JSON");
  }
  const list = (doc as { blockdevices?: unknown } | null)?.blockdevices;
  if (!Array.isArray(list)) throw new BlockInfoError("lsblk output has no blockdevices list");
  return list.map((d) => device(d, 0));
}

/** Every node with the chain of its ancestors (a dm device under two disks appears twice). */
export function walk(forest: readonly BlockDevice[]): { dev: BlockDevice; ancestors: BlockDevice[] }[] {
  const out: { dev: BlockDevice; ancestors: BlockDevice[] }[] = [];
  const visit = (dev: BlockDevice, ancestors: BlockDevice[]) => {
    out.push({ dev, ancestors });
    for (const c of dev.children) visit(c, [...ancestors, dev]);
  };
  for (const d of forest) visit(d, []);
  return out;
}

/** Nodes below (not including) a device. */
export function descendants(dev: BlockDevice): BlockDevice[] {
  return dev.children.flatMap((c) => [c, ...descendants(c)]);
}

/** The node for a path (already resolved through symlinks), by path, /dev/<name> or /dev/<kname>. */
export function findByPath(
  forest: readonly BlockDevice[],
  path: string,
): { dev: BlockDevice; ancestors: BlockDevice[] } | null {
  return (
    walk(forest).find(
      ({ dev }) => dev.path === path || `/dev/${dev.name}` === path || `/dev/${dev.kname}` === path,
    ) ?? null
  );
}

export interface Mount {
  majMin: string;
  mountPoint: string;
  fstype: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/**
 * /proc/self/mountinfo: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
 * Lines that do not parse are skipped (the kernel's format is fixed; a bad line is not ours).
 */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split("\n")) {
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    const pre = line.slice(0, dash).split(" ");
    const post = line.slice(dash + 3).split(" ");
    if (pre.length < 6 || post.length < 2 || !/^\d+:\d+$/.test(pre[2]!)) continue;
    out.push({
      majMin: pre[2]!,
      mountPoint: unescapeOctal(pre[4]!),
      fstype: post[0]!,
      source: unescapeOctal(post[1]!),
    });
  }
  return out;
}

/** /proc/swaps: the Filename column (devices and swap files). */
export function parseSwaps(text: string): string[] {
  return text
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((f) => f !== "")
    .map(unescapeOctal);
}

/** 31914983424 -> "31.9 GB" (decimal units, as printed on cards). */
export function formatSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Linux dev_t to "major:minor" (glibc's encoding: 12-bit major, 20-bit minor, split). */
export function devToMajMin(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}
