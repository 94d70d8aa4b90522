/**
 * The flasher's refusal table over recorded machines (test/fixtures/lsblk/README.md): every rule
 * with its exact message and fix, the allowed cases, and the parsers on real and old lsblk output.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  BlockInfoError,
  devToMajMin,
  findByPath,
  formatSize,
  parseLsblk,
  parseMountinfo,
  parseSwaps,
  walk,
} from "../../images/block-devices.ts";
import { checkTarget, describeDisk, type MachineState, type RuleId } from "../../images/flash-rules.ts";

const FIX = join(import.meta.dir, "../fixtures/lsblk");
const read = (f: string) => readFileSync(join(FIX, f), "utf8");
const machine = (name: string): MachineState => ({
  devices: parseLsblk(read(`${name}.json`)),
  mounts: parseMountinfo(read(`${name}.mountinfo`)),
  swaps: parseSwaps(read(`${name}.swaps`)),
});
const laptop = machine("laptop");
const emmc = machine("emmc-board");
const IMAGE = { majMin: "8:65", path: "/media/user/My Data/images/qubes-air-pi.img" };
const GB = 1_000_000_000;

const table: { target: string; rule: RuleId; message: string; fix: string; state?: MachineState }[] = [
  {
    target: "/dev/sda1",
    rule: "partition",
    message: "/dev/sda1 is a partition of /dev/sda",
    fix: "give the whole disk: /dev/sda",
  },
  {
    target: "/dev/loop1",
    rule: "loop",
    message: "/dev/loop1 is a loop device (a file attached as a disk), not a card or stick",
    fix: "to write into a file use --target-file; to write this loop device anyway add --allow-loop",
  },
  {
    target: "/dev/mapper/vg-root",
    rule: "not-disk",
    message: "/dev/mapper/vg-root is a lvm device, not a whole disk",
    fix: "give the physical disk it is built on (see lsblk)",
  },
  {
    target: "/dev/nvme0n1",
    rule: "system",
    message:
      "/dev/nvme0n1 holds the running system: /boot/efi on /dev/nvme0n1p1, /boot on /dev/nvme0n1p2, / on /dev/mapper/vg-root, swap on /dev/mapper/vg-swap, /home on /dev/mapper/vg-home",
    fix: "choose another disk: writing this one would destroy the system you are running",
  },
  {
    target: "/dev/mmcblk0",
    rule: "system",
    state: emmc,
    message: "/dev/mmcblk0 holds the running system: /boot/firmware on /dev/mmcblk0p1, / on /dev/mmcblk0p2",
    fix: "choose another disk: writing this one would destroy the system you are running",
  },
  {
    target: "/dev/sdb",
    rule: "mounted",
    message: "/dev/sdb has mounted filesystems: /media/user/STICK (/dev/sdb1)",
    fix: "unmount them first: udisksctl unmount -b /dev/sdb1",
  },
  {
    target: "/dev/sde",
    rule: "image-source",
    message: "/dev/sde holds the image file /media/user/My Data/images/qubes-air-pi.img",
    fix: "copy the image to another disk first",
  },
  {
    target: "/dev/sdc",
    rule: "read-only",
    message: "/dev/sdc is read-only",
    fix: "if it is an SD card, slide the lock switch on its side away from LOCK, then insert it again",
  },
  {
    target: "/dev/sdd",
    rule: "too-small",
    message: "/dev/sdd is 127.9 MB, the image needs 2.0 GB",
    fix: "use a card or stick of at least 2.0 GB",
  },
  {
    target: "/dev/sdf",
    rule: "no-medium",
    message: "/dev/sdf has no medium (size 0)",
    fix: "insert the card into the reader",
  },
  {
    target: "/dev/mmcblk1",
    rule: "fixed",
    state: emmc,
    message: "/dev/mmcblk1 is a fixed disk (neither removable nor hot-plugged)",
    fix: "if it really is the card you want (a built-in SD slot such as mmcblk), add --allow-fixed --expect-serial=0x1234abcd",
  },
  {
    target: "/dev/sr9",
    rule: "not-block-device",
    message: "/dev/sr9 is not a disk that lsblk knows",
    fix: "list disks with `lsblk -o NAME,SIZE,TRAN,MODEL,SERIAL`; to write into a regular file use --target-file",
  },
];

describe("refusal table", () => {
  for (const row of table) {
    test(`${row.rule}: ${row.target}`, () => {
      const r = checkTarget(row.state ?? laptop, { target: row.target, imageSize: 2 * GB, image: IMAGE });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      const refusal = r.refusals.find((x) => x.rule === row.rule);
      expect(refusal).toEqual({ rule: row.rule, message: row.message, fix: row.fix });
    });
  }

  test("an unmounted LUKS disk is in use by its open mapping", () => {
    const devices = parseLsblk(read("laptop.json"));
    for (const { dev } of walk(devices)) dev.mountpoints = [];
    const r = checkTarget(
      { devices, mounts: [], swaps: [] },
      { target: "/dev/nvme0n1", imageSize: GB, allowFixed: true },
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.refusals.map((x) => x.rule)).toEqual(["in-use"]);
  });

  test("the image's disk is found through the mount when st_dev is anonymous (btrfs, overlay)", () => {
    const r = checkTarget(laptop, { target: "/dev/sde", imageSize: GB, image: { ...IMAGE, majMin: "0:45" } });
    expect(!r.ok && r.refusals.some((x) => x.rule === "image-source")).toBe(true);
  });
});

describe("allowed targets", () => {
  test("the USB SD reader with a card: ok, no warnings", () => {
    const r = checkTarget(laptop, { target: "/dev/sda", imageSize: 2 * GB, image: IMAGE });
    expect(r).toMatchObject({ ok: true, warnings: [] });
    expect(describeDisk(r.disk!)).toBe(
      "/dev/sda: Generic- STORAGE DEVICE, serial 000000001536, 31.9 GB, usb, removable",
    );
  });

  test("a built-in SD slot with --allow-fixed, with a warning", () => {
    const r = checkTarget(emmc, { target: "/dev/mmcblk1", imageSize: 2 * GB, allowFixed: true });
    expect(r).toMatchObject({
      ok: true,
      warnings: ["/dev/mmcblk1 is a fixed disk, allowed by --allow-fixed"],
    });
  });

  test("--allow-loop lets an unmounted loop device through, never a mounted one", () => {
    expect(checkTarget(laptop, { target: "/dev/loop1", imageSize: GB, allowLoop: true }).ok).toBe(true);
    const mounted = checkTarget(laptop, { target: "/dev/loop0", imageSize: 1000, allowLoop: true });
    expect(!mounted.ok && mounted.refusals.map((r) => r.rule)).toEqual(["mounted", "read-only"]);
  });

  test("fixed disks stay refused with --allow-fixed when they hold the system", () => {
    const r = checkTarget(laptop, { target: "/dev/nvme0n1", imageSize: GB, allowFixed: true });
    expect(!r.ok && r.refusals.map((x) => x.rule)).toEqual(["system"]);
  });

  test("a large target gets a warning", () => {
    const devices = parseLsblk(read("laptop.json"));
    const r = checkTarget(
      { devices, mounts: [], swaps: [] },
      { target: "/dev/sda", imageSize: GB, largeBytes: 16 * GB },
    );
    expect(r.ok && r.warnings[0]).toBe(
      "/dev/sda is 31.9 GB: large for an SD card or stick. Is it really the one?",
    );
  });
});

describe("parsers", () => {
  test("real lsblk 2.38 output from this VM", () => {
    const devs = parseLsblk(read("vm-real-util-linux-2.38.json"));
    const vda = findByPath(devs, "/dev/vda")!.dev;
    expect(vda).toMatchObject({ type: "disk", majMin: "254:0", mountpoints: ["/"], rm: false });
    const state = { devices: devs, mounts: parseMountinfo(read("vm-real.mountinfo")), swaps: [] };
    const r = checkTarget(state, { target: "/dev/vda", imageSize: GB, allowFixed: true });
    expect(!r.ok && r.refusals.map((x) => x.rule)).toEqual(["system"]);
  });

  test("util-linux 2.33: strings for everything, mountpoint singular", () => {
    const [sda] = parseLsblk(read("util-linux-2.33.json"));
    expect(sda).toMatchObject({ size: 31914983424, rm: true, ro: false, model: "STORAGE DEVICE" });
    expect(sda!.children[0]!.mountpoints).toEqual(["/media/pi/bootfs"]);
  });

  test("bad lsblk output is a clear error", () => {
    expect(() => parseLsblk("not json")).toThrow(BlockInfoError);
    expect(() => parseLsblk("{}")).toThrow("no blockdevices list");
    expect(() => parseLsblk('{"blockdevices":[{"name":"sda","type":"disk","size":"31.9G"}]}')).toThrow(
      "run lsblk with -b",
    );
    expect(() => parseLsblk('{"blockdevices":[{"name":"sda","type":"disk","size":1,"rm":"maybe"}]}')).toThrow(
      "rm is",
    );
  });

  test("mountinfo unescapes, swaps, sizes, dev_t", () => {
    const m = parseMountinfo(read("laptop.mountinfo"));
    expect(m.find((x) => x.majMin === "8:65")!.mountPoint).toBe("/media/user/My Data");
    expect(parseSwaps(read("laptop.swaps"))).toEqual(["/dev/dm-2"]);
    expect(formatSize(127926272)).toBe("127.9 MB");
    expect(devToMajMin(0x801n)).toBe("8:1");
    expect(devToMajMin(0x10303n)).toBe("259:3");
    expect(devToMajMin(0x10082cn)).toBe("8:300"); // minor above 255: the split encoding
    const root = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")).find(
      (x) => x.mountPoint === "/",
    );
    if (root) expect(devToMajMin(statSync("/", { bigint: true }).dev)).toBe(root.majMin);
  });
});
