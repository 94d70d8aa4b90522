/**
 * The partition table of a raw image, read with `sfdisk -J` (no root, no loop device), and the
 * layouts we accept: a Raspberry Pi OS image (MBR, a FAT boot partition, then a Linux root) and
 * the USB armory Debian image (MBR, one Linux partition after the U-Boot area at 0-5 MiB).
 * parsePartitionTable and the layout checks are pure; readPartitionTable runs sfdisk.
 */
import { ImageError, MiB, run } from "./common.ts";

export interface Partition {
  readonly index: number;
  /** In bytes from the start of the image. */
  readonly offset: number;
  readonly size: number;
  /** MBR type as sfdisk prints it ("c", "83"), or a GPT type GUID. */
  readonly type: string;
}

export interface PartitionTable {
  readonly label: "dos" | "gpt";
  readonly sectorSize: number;
  readonly partitions: readonly Partition[];
}

const FAT_TYPES = new Set(["b", "c", "e", "6", "ef", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"]);
const LINUX_TYPES = new Set(["83", "0fc63daf-8483-4772-8e79-3d69d8477de4"]);

export const isFat = (p: Partition) => FAT_TYPES.has(p.type.toLowerCase());
export const isLinux = (p: Partition) => LINUX_TYPES.has(p.type.toLowerCase());

export function parsePartitionTable(json: string, imageSize: number, source: string): PartitionTable {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new ImageError(`${source}: sfdisk printed no partition table (is it a disk image?)`);
  }
  const t = (doc as { partitiontable?: Record<string, unknown> }).partitiontable;
  if (!t || (t.label !== "dos" && t.label !== "gpt")) {
    throw new ImageError(
      `${source} has no MBR or GPT partition table: give the raw image (.img/.raw), unpacked`,
    );
  }
  const sectorSize = typeof t.sectorsize === "number" ? t.sectorsize : 512;
  if (t.unit !== undefined && t.unit !== "sectors") throw new ImageError(`${source}: unexpected sfdisk unit`);
  const parts = Array.isArray(t.partitions) ? t.partitions : [];
  const partitions = parts.map((p: Record<string, unknown>, i: number): Partition => {
    const start = Number(p.start);
    const size = Number(p.size);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(size) || start <= 0 || size <= 0) {
      throw new ImageError(`${source}: partition ${i + 1} has a bad start or size`);
    }
    const offset = start * sectorSize;
    if (offset + size * sectorSize > imageSize) {
      throw new ImageError(
        `${source}: partition ${i + 1} ends beyond the end of the file (a truncated download? check its sha256)`,
      );
    }
    return { index: i + 1, offset, size: size * sectorSize, type: String(p.type ?? "") };
  });
  return { label: t.label, sectorSize, partitions };
}

export function readPartitionTable(sfdisk: string, image: string, imageSize: number): PartitionTable {
  const r = run(sfdisk, ["-J", image], { allowFail: true });
  if (r.status !== 0) {
    throw new ImageError(
      `${image}: sfdisk cannot read a partition table (${r.stderr.trim().split("\n")[0] ?? ""}); ` +
        "give the raw image, uncompressed (xz -d / unzip first)",
    );
  }
  return parsePartitionTable(r.stdout.toString("utf8"), imageSize, image);
}

export interface PiLayout {
  readonly boot: Partition;
  readonly root: Partition;
}

/** Raspberry Pi OS: partition 1 FAT (bootfs), partition 2 Linux (rootfs). */
export function piLayout(t: PartitionTable, source: string): PiLayout {
  const [boot, root] = t.partitions;
  if (!boot || !root || !isFat(boot) || !isLinux(root)) {
    throw new ImageError(
      `${source} does not look like Raspberry Pi OS: expected partition 1 FAT (bootfs) and partition 2 Linux ` +
        `(rootfs), found ${t.partitions.map((p) => `${p.index}:type ${p.type}`).join(", ") || "none"}. ` +
        "Use Raspberry Pi OS Lite (64-bit), unpacked with xz -d",
    );
  }
  return { boot, root };
}

/** U-Boot of the USB armory lives at byte 1024 of the disk, before the first partition. */
export const ARMORY_BOOT_AREA = 5 * MiB;

/** USB armory Debian base image: one Linux partition starting at or after 5 MiB. */
export function armoryLayout(t: PartitionTable, source: string): { root: Partition; bootArea: number } {
  const root = t.partitions.find(isLinux);
  if (!root || t.label !== "dos") {
    throw new ImageError(
      `${source} does not look like the USB armory Debian image: expected an MBR with a Linux partition`,
    );
  }
  const first = Math.min(...t.partitions.map((p) => p.offset));
  if (first < ARMORY_BOOT_AREA) {
    throw new ImageError(
      `${source}: the first partition starts at ${first} bytes, inside the U-Boot area (0-5 MiB); ` +
        "this is not the usbarmory-debian-base_image layout",
    );
  }
  return { root, bootArea: first };
}
