/**
 * `qubes-air flash` as the user meets it (flashCommand with a scripted terminal): usage, the
 * confirmation that names the device, --yes with --expect-serial, refusals shown with their
 * fixes (machine state from the fixtures), and the end-to-end file-target write.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseLsblk, parseMountinfo, parseSwaps } from "../../images/block-devices.ts";
import { type FlashIO, flashCommand } from "../../images/flash.ts";
import type { MachineState } from "../../images/flash-rules.ts";

const dir = mkdtempSync(join(tmpdir(), "qa-flashcmd-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const image = join(dir, "pi.img");
const bytes = randomBytes(5 * 1024 * 1024 + 99);
writeFileSync(image, bytes);

function io(answers: (string | null)[] = [], signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  const prompts: string[] = [];
  const flashIO: FlashIO = {
    out: (t) => void out.push(t),
    err: (t) => void err.push(t),
    errIsTTY: false,
    signal,
    readLine: async (p) => {
      prompts.push(p);
      return answers.shift() ?? null;
    },
  };
  return { io: flashIO, out: () => out.join(""), err: () => err.join(""), prompts };
}

const FIX = join(import.meta.dir, "../fixtures/lsblk");
const laptop = async (): Promise<MachineState> => ({
  devices: parseLsblk(readFileSync(join(FIX, "laptop.json"), "utf8")),
  mounts: parseMountinfo(readFileSync(join(FIX, "laptop.mountinfo"), "utf8")),
  swaps: parseSwaps(readFileSync(join(FIX, "laptop.swaps"), "utf8")),
});
/** The fixture machine, with its sda renamed to a block device that exists here (/dev/loop7). */
const withDisk = async (): Promise<MachineState> => {
  const m = await laptop();
  const sda = m.devices.find((d) => d.name === "sda")!;
  Object.assign(sda, { name: "loop7", kname: "loop7", path: "/dev/loop7", majMin: "7:7" });
  return m;
};
const haveLoop7 = existsSync("/dev/loop7") && statSync("/dev/loop7").isBlockDevice();
const deps = (probe = laptop) => ({ probe, imageLocation: () => ({ majMin: "254:0", path: image }) });

describe("arguments", () => {
  test("--help prints usage on stdout, exit 0", async () => {
    const t = io();
    expect(await flashCommand(["--help"], t.io)).toBe(0);
    expect(t.out()).toContain("usage: qubes-air flash [options] IMAGE DEVICE");
    expect(t.out()).toContain("--expect-serial=SERIAL");
  });

  test("usage errors exit 2", async () => {
    for (const argv of [[], [image], ["--bogus", image, "x"], [image, "x", "--sha256=abc"]]) {
      const t = io();
      expect(await flashCommand(argv, t.io)).toBe(2);
      expect(t.err()).toContain("usage:");
    }
  });

  test("missing image, missing device, a char device: clear errors, exit 1", async () => {
    let t = io();
    expect(await flashCommand([join(dir, "nope.img"), "/dev/sdz"], t.io)).toBe(1);
    expect(t.err()).toContain("cannot read the image");
    t = io();
    expect(await flashCommand([image, "/dev/sdzz9"], t.io)).toBe(1);
    expect(t.err()).toContain("/dev/sdzz9 does not exist (list disks with: lsblk");
    t = io();
    expect(await flashCommand([image, "/dev/null"], t.io)).toBe(1);
    expect(t.err()).toContain("neither a disk (block device) nor a regular file");
  });
});

describe("file target end to end", () => {
  test("asks, writes, verifies; prints the sha256 on stdout", async () => {
    const target = join(dir, "card.img");
    const t = io(["card.img"]);
    expect(await flashCommand([image, target, "--target-file"], t.io)).toBe(0);
    expect(t.prompts).toEqual(['Type the device name (card.img) or "yes" to continue: ']);
    expect(t.err()).toContain("About to ERASE the new file");
    expect(t.err()).toContain(
      "Done: wrote 5.2 MB, verified by reading it back with O_DIRECT (around the page cache)",
    );
    expect(t.out()).toBe(`${createHash("sha256").update(bytes).digest("hex")}  ${target}\n`);
    expect(readFileSync(target).equals(bytes)).toBe(true);
  });

  test("an existing regular file is a file target without the flag; a wrong answer writes nothing", async () => {
    const target = join(dir, "existing.img");
    writeFileSync(target, "old content");
    const t = io(["sdb"]);
    expect(await flashCommand([image, target], t.io)).toBe(1);
    expect(t.err()).toContain("not confirmed; nothing was written");
    expect(readFileSync(target, "utf8")).toBe("old content");
    const eof = io([null]);
    expect(await flashCommand([image, target], eof.io)).toBe(1);
    expect(eof.err()).toContain("no answer (end of input); for scripts use --yes --expect-serial=SERIAL");
  });

  test("--yes needs no serial for a file; the image itself is refused", async () => {
    expect(await flashCommand([image, join(dir, "y.img"), "--target-file", "--yes"], io().io)).toBe(0);
    const t = io();
    expect(await flashCommand([image, image, "--yes"], t.io)).toBe(1);
    expect(t.err()).toContain("is the image itself");
  });

  test("verification failure exits 3 with the explanation", async () => {
    const target = join(dir, "bad.img");
    const t = io();
    const hooks = {
      beforeVerify: (p: string) => {
        const fd = openSync(p, "r+");
        writeSync(fd, "X", 3 * 1024 * 1024); // inside the first chunk, after the first block
        closeSync(fd);
      },
    };
    expect(await flashCommand([image, target, "--target-file", "--yes"], t.io, { hooks })).toBe(3);
    expect(t.err()).toContain("Verification FAILED");
    expect(t.err()).toContain("first block is blank, so it will not boot");
  });

  test("--sha256 mismatch exits 1", async () => {
    const t = io();
    const argv = [image, join(dir, "s.img"), "--target-file", "--yes", `--sha256=${"ab".repeat(32)}`];
    expect(await flashCommand(argv, t.io)).toBe(1);
    expect(t.err()).toContain("not the expected abab");
  });

  test("Ctrl-C at the prompt writes nothing, exit 130", async () => {
    const ac = new AbortController();
    const t = io();
    t.io.readLine = () => {
      ac.abort();
      return new Promise(() => {});
    };
    t.io.signal = ac.signal;
    expect(await flashCommand([image, join(dir, "never.img"), "--target-file"], t.io)).toBe(130);
    expect(existsSync(join(dir, "never.img"))).toBe(false);
  });
});

describe("disk targets (machine state from fixtures)", () => {
  test.skipIf(!existsSync("/dev/loop1"))("refusals are listed with their fixes", async () => {
    const t = io();
    expect(await flashCommand([image, "/dev/loop1"], t.io, deps())).toBe(1);
    expect(t.err()).toContain(
      "refusing to write /dev/loop1:\n  - /dev/loop1 is a loop device (a file attached as a disk), not a card or stick\n    fix: to write into a file use --target-file",
    );
  });

  test.skipIf(!haveLoop7)("the confirmation shows model, serial, size and transport", async () => {
    const t = io(["no"]);
    expect(await flashCommand([image, "/dev/loop7"], t.io, deps(withDisk))).toBe(1);
    expect(t.err()).toContain(
      "About to ERASE /dev/loop7: Generic- STORAGE DEVICE, serial 000000001536, 31.9 GB, usb, removable",
    );
    expect(t.prompts).toEqual(['Type the device name (loop7) or "yes" to continue: ']);
  });

  test.skipIf(!haveLoop7)("--yes needs --expect-serial, and a wrong serial is refused", async () => {
    let t = io();
    expect(await flashCommand([image, "/dev/loop7", "--yes"], t.io, deps(withDisk))).toBe(1);
    expect(t.err()).toContain("--yes needs --expect-serial=SERIAL for a disk");
    t = io();
    expect(
      await flashCommand([image, "/dev/loop7", "--yes", "--expect-serial=XYZ"], t.io, deps(withDisk)),
    ).toBe(1);
    expect(t.err()).toContain("its serial number is 000000001536, not the expected XYZ");
  });
});
