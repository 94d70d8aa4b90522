/**
 * Which disks the flasher may write, as pure functions over the parsed machine state
 * (images/block-devices.ts). Each refusal names the rule, says what is wrong and how to fix it.
 * The rules follow reference/images-hw.md section 4 (rpi-imager, Etcher and their bug reports):
 * whole disks only; never the running system, a mounted disk, the image's own disk, a read-only
 * or too-small target; by default only removable or hot-plugged disks.
 * Must never: let a disk through because a check could not be evaluated (unknown = refuse).
 */
import { type BlockDevice, descendants, findByPath, formatSize, type Mount, walk } from "./block-devices.ts";

export interface MachineState {
  devices: BlockDevice[];
  mounts: Mount[];
  /** /proc/swaps filenames. */
  swaps: string[];
}

export type RuleId =
  | "not-block-device"
  | "partition"
  | "loop"
  | "not-disk"
  | "system"
  | "mounted"
  | "in-use"
  | "image-source"
  | "read-only"
  | "no-medium"
  | "too-small"
  | "fixed";

export interface Refusal {
  rule: RuleId;
  message: string;
  fix: string;
}

export interface TargetCheck {
  /** The target path with symlinks resolved (/dev/disk/by-id/... -> /dev/sdb). */
  target: string;
  imageSize: number;
  /** Where the image file lives: its st_dev as "maj:min", and its resolved path. */
  image?: { majMin: string | null; path: string };
  allowFixed?: boolean;
  allowLoop?: boolean;
  /** Targets above this size get a warning (default 64 GiB: bigger than any usual card). */
  largeBytes?: number;
}

export type CheckResult =
  | { ok: true; disk: BlockDevice; warnings: string[] }
  | { ok: false; disk: BlockDevice | null; refusals: Refusal[] };

/** Mount points that belong to the running system (Qubes keeps the private volume at /rw). */
export const SYSTEM_MOUNTS = [
  "/",
  "/boot",
  "/boot/efi",
  "/boot/firmware",
  "/usr",
  "/var",
  "/home",
  "/etc",
  "/opt",
  "/srv",
  "/rw",
];
const HOLDER_TYPES = /^(crypt|lvm|dm|mpath|raid\d*|md)$/;

const underDir = (path: string, dir: string) => dir === "/" || path === dir || path.startsWith(`${dir}/`);

/** Mounts (and swaps) whose backing device is `dev`, from mountinfo and lsblk's own view. */
function mountsOf(dev: BlockDevice, state: MachineState): { where: string; swap: boolean }[] {
  const names = new Set([dev.path, `/dev/${dev.name}`, `/dev/${dev.kname}`, `/dev/mapper/${dev.name}`]);
  const out = new Map<string, boolean>();
  for (const m of state.mounts) {
    if ((dev.majMin !== null && m.majMin === dev.majMin) || names.has(m.source)) out.set(m.mountPoint, false);
  }
  for (const mp of dev.mountpoints) out.set(mp === "[SWAP]" ? "swap" : mp, mp === "[SWAP]");
  for (const s of state.swaps) if (names.has(s)) out.set("swap", true);
  return [...out].map(([where, swap]) => ({ where, swap }));
}

/** The devices that hold the image file: by st_dev, else by the mount that contains its path. */
function imageHolders(state: MachineState, image: { majMin: string | null; path: string }): Set<BlockDevice> {
  const holders = new Set<BlockDevice>();
  const containing = state.mounts
    .filter((m) => underDir(image.path, m.mountPoint))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
  for (const { dev } of walk(state.devices)) {
    const byDev = image.majMin !== null && dev.majMin === image.majMin;
    const byMount =
      containing !== undefined &&
      (dev.majMin === containing.majMin ||
        dev.path === containing.source ||
        `/dev/${dev.kname}` === containing.source);
    if (byDev || byMount) holders.add(dev);
  }
  return holders;
}

const label = (d: BlockDevice) => d.path;

export function checkTarget(state: MachineState, check: TargetCheck): CheckResult {
  const found = findByPath(state.devices, check.target);
  const t = check.target;
  if (!found) {
    return {
      ok: false,
      disk: null,
      refusals: [
        {
          rule: "not-block-device",
          message: `${t} is not a disk that lsblk knows`,
          fix: "list disks with `lsblk -o NAME,SIZE,TRAN,MODEL,SERIAL`; to write into a regular file use --target-file",
        },
      ],
    };
  }
  const { dev, ancestors } = found;
  const refusals: Refusal[] = [];
  const add = (rule: RuleId, message: string, fix: string) => refusals.push({ rule, message, fix });

  if (dev.type === "part") {
    const parent = ancestors.at(-1);
    const whole = parent ? parent.path : "the whole disk";
    add(
      "partition",
      `${t} is a partition of ${parent ? label(parent) : "a disk"}`,
      `give the whole disk: ${whole}`,
    );
  } else if (dev.type === "loop") {
    if (!check.allowLoop) {
      add(
        "loop",
        `${t} is a loop device (a file attached as a disk), not a card or stick`,
        "to write into a file use --target-file; to write this loop device anyway add --allow-loop",
      );
    }
  } else if (dev.type !== "disk") {
    add(
      "not-disk",
      `${t} is a ${dev.type} device, not a whole disk`,
      "give the physical disk it is built on (see lsblk)",
    );
  }

  const subtree = [dev, ...descendants(dev)];
  const system: string[] = [];
  const mounted: string[] = [];
  const unmountable: string[] = [];
  for (const d of subtree) {
    for (const m of mountsOf(d, state)) {
      if (m.swap) system.push(`swap on ${label(d)}`);
      else if (SYSTEM_MOUNTS.includes(m.where)) system.push(`${m.where} on ${label(d)}`);
      else {
        mounted.push(`${m.where} (${label(d)})`);
        unmountable.push(d.path);
      }
    }
  }
  if (system.length) {
    add(
      "system",
      `${t} holds the running system: ${system.join(", ")}`,
      "choose another disk: writing this one would destroy the system you are running",
    );
  }
  if (mounted.length) {
    const cmds = [...new Set(unmountable)].map((p) => `udisksctl unmount -b ${p}`).join("; ");
    add("mounted", `${t} has mounted filesystems: ${mounted.join(", ")}`, `unmount them first: ${cmds}`);
  }
  if (!system.length && !mounted.length) {
    const holder = descendants(dev).find((d) => HOLDER_TYPES.test(d.type));
    if (holder) {
      add(
        "in-use",
        `${t} is in use by the ${holder.type} device ${holder.name}`,
        "close it first (cryptsetup close, vgchange -an or mdadm --stop)",
      );
    }
  }
  if (check.image) {
    const holders = imageHolders(state, check.image);
    if (subtree.some((d) => holders.has(d))) {
      add(
        "image-source",
        `${t} holds the image file ${check.image.path}`,
        "copy the image to another disk first",
      );
    }
  }
  if (dev.ro) {
    add(
      "read-only",
      `${t} is read-only`,
      "if it is an SD card, slide the lock switch on its side away from LOCK, then insert it again",
    );
  }
  if (dev.size === 0) {
    add("no-medium", `${t} has no medium (size 0)`, "insert the card into the reader");
  } else if (dev.size < check.imageSize) {
    add(
      "too-small",
      `${t} is ${formatSize(dev.size)}, the image needs ${formatSize(check.imageSize)}`,
      `use a card or stick of at least ${formatSize(check.imageSize)}`,
    );
  }
  const removable = dev.rm || dev.hotplug;
  if (!removable && dev.type !== "loop" && !check.allowFixed) {
    const kind = dev.tran ? `${dev.tran} ` : "";
    add(
      "fixed",
      `${t} is a fixed ${kind}disk (neither removable nor hot-plugged)`,
      `if it really is the card you want (a built-in SD slot such as mmcblk), add --allow-fixed${
        dev.serial ? ` --expect-serial=${dev.serial}` : ""
      }`,
    );
  }

  if (refusals.length) return { ok: false, disk: dev, refusals };
  const warnings: string[] = [];
  if (dev.size > (check.largeBytes ?? 64 * 2 ** 30)) {
    warnings.push(`${t} is ${formatSize(dev.size)}: large for an SD card or stick. Is it really the one?`);
  }
  if (!removable && dev.type !== "loop") warnings.push(`${t} is a fixed disk, allowed by --allow-fixed`);
  return { ok: true, disk: dev, warnings };
}

/** One line for the confirmation prompt: node, model, serial, size, transport, removable. */
export function describeDisk(d: BlockDevice): string {
  const model = [d.vendor, d.model].filter(Boolean).join(" ") || "unknown model";
  const how = [d.tran ?? "unknown transport", d.rm ? "removable" : d.hotplug ? "hot-plugged" : "fixed"];
  return `${d.path}: ${model}, serial ${d.serial ?? "(none)"}, ${formatSize(d.size)}, ${how.join(", ")}`;
}
