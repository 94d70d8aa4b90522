/**
 * `qubes-air flash IMAGE DEVICE`: checks the target with images/flash-rules.ts, shows what will
 * be erased and asks for confirmation (or takes --yes --expect-serial=SERIAL from scripts), then
 * writes and verifies with images/flash-write.ts. The host CLI runs flash(argv, io) as its
 * `flash` command; flashCommand(argv, io) runs it through the CLI kit on its own (--help, usage
 * errors), as images/flash-main.ts does. Exit statuses (core/cli/exit-codes.ts): OK written and
 * verified, FAILURE refused, aborted or failed, USAGE, VERIFY_FAILED, INTERRUPTED (Ctrl-C).
 * Must never: write without a confirmation that names the device, or write a disk that a rule
 * refused (there are overrides for "fixed" and "loop" only).
 */
import { realpathSync, statSync } from "node:fs";
import { basename } from "node:path";
import { EXIT } from "../core/cli/exit-codes.ts";
import { UsageError } from "../core/cli/usage-error.ts";
import { runCommand } from "../platform/cli/dispatch.ts";
import { parseCommandLine } from "../platform/cli/parse.ts";
import { formatSize } from "./block-devices.ts";
import { imageLocation, probeMachine } from "./flash-probe.ts";
import { ProgressReporter } from "./flash-progress.ts";
import { checkTarget, describeDisk, type MachineState } from "./flash-rules.ts";
import { FlashWriteError, type WriteHooks, type WriteOutcome, writeImage } from "./flash-write.ts";

export interface FlashIO {
  out(text: string): void;
  err(text: string): void;
  /** Progress is redrawn in place when stderr is a terminal. */
  errIsTTY: boolean;
  /** One line typed by the user after `prompt` (on stderr), or null at end of input. */
  readLine(prompt: string): Promise<string | null>;
  /** Aborted on Ctrl-C. */
  signal?: AbortSignal;
}

export interface FlashDeps {
  probe?: () => Promise<MachineState>;
  imageLocation?: (image: string) => { majMin: string | null; path: string };
  hooks?: WriteHooks;
}

export const FLASH_USAGE = `usage: qubes-air flash [options] IMAGE DEVICE

Writes IMAGE to the disk DEVICE (an SD card or USB stick, e.g. /dev/sdb or
/dev/disk/by-id/usb-...), then reads it back to verify it. The first 4 KiB are
blanked first and written last, so an interrupted or failed write never boots.

Refuses partitions, loop devices, the running system's disks, mounted disks,
the disk holding IMAGE, read-only and too-small targets, and by default disks
that are neither removable nor hot-plugged.

options:
  --yes                  do not ask; needs --expect-serial for a disk
  --expect-serial=SERIAL refuse unless DEVICE has this serial number (see lsblk -o NAME,SERIAL)
  --allow-fixed          allow a non-removable disk (e.g. a built-in SD slot, mmcblk)
  --allow-loop           allow a loop device
  --target-file          DEVICE is a regular file (created if missing); also implied
                         when DEVICE is an existing regular file
  --sha256=HEX           the image's expected sha256; checked before the first block is written
  -h, --help             this text

exit status: 0 written and verified, 1 refused or failed, 2 usage,
             3 verification failed, 130 interrupted
`;

type Target =
  | { kind: "block"; path: string; summary: string; name: string }
  | { kind: "file"; path: string; summary: string };

export const FLASH_SUMMARY = "write a device image to an SD card or USB stick, then verify it";

/** The flasher on its own, through the CLI kit: --help, and usage errors with the usage line. */
export function flashCommand(argv: readonly string[], io: FlashIO, deps: FlashDeps = {}): Promise<number> {
  const command = { name: "flash", summary: FLASH_SUMMARY, help: FLASH_USAGE };
  const run = (args: string[]) => flash(args, io, deps);
  // The flasher reads no environment; its output goes where the FlashIO says.
  const ctx = { env: {}, out: (t: string) => io.out(t), err: (t: string) => io.err(t) };
  return runCommand("qubes-air flash", { ...command, run }, argv, ctx);
}

/** The `flash` command's body: throws UsageError for a bad command line. */
export async function flash(argv: readonly string[], io: FlashIO, deps: FlashDeps = {}): Promise<number> {
  const { values: o, positionals } = parse(argv);
  if (positionals.length !== 2) throw new UsageError("give exactly IMAGE and DEVICE");
  const [image, device] = positionals as [string, string];
  if (o.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.sha256))
    throw new UsageError("--sha256 takes 64 hex digits");
  const fail = (msg: string) => {
    io.err(`qubes-air flash: ${msg}\n`);
    return EXIT.FAILURE;
  };

  let imageSize: number;
  try {
    const st = statSync(image);
    if (!st.isFile()) return fail(`${image} is not a regular file`);
    imageSize = st.size;
  } catch (e) {
    return fail(`cannot read the image ${image}: ${(e as { code?: string }).code ?? e}`);
  }
  if (imageSize === 0) return fail(`the image ${image} is empty`);

  let target: Target;
  try {
    target = await resolveTarget(image, device, imageSize, o, deps, io);
  } catch (e) {
    return fail((e as Error).message);
  }

  if (o.yes) {
    if (target.kind === "block" && o["expect-serial"] === undefined) {
      return fail(`--yes needs --expect-serial=SERIAL for a disk, so a script never erases the wrong one`);
    }
    io.err(`Erasing ${target.summary}\n`);
  } else {
    io.err(`About to ERASE ${target.summary}\nEverything on it will be lost.\n`);
    const name = target.kind === "block" ? target.name : basename(target.path);
    const answer = await ask(io, `Type the device name (${name}) or "yes" to continue: `);
    const ok = answer !== null && [name, target.path, "yes"].includes(answer.trim());
    if (!ok) {
      if (io.signal?.aborted) {
        io.err("\nInterrupted; nothing was written.\n");
        return EXIT.INTERRUPTED;
      }
      return fail(
        answer === null
          ? "no answer (end of input); for scripts use --yes --expect-serial=SERIAL"
          : "not confirmed; nothing was written",
      );
    }
  }

  io.err(`Writing ${image} (${formatSize(imageSize)}) to ${target.path}\n`);
  const progress = new ProgressReporter((t) => io.err(t), io.errIsTTY);
  let outcome: WriteOutcome;
  try {
    outcome = await writeImage({
      image,
      target: target.path,
      kind: target.kind,
      expectedSha256: o.sha256,
      signal: io.signal,
      onProgress: (p) => progress.update(p),
      hooks: deps.hooks,
    });
  } catch (e) {
    progress.end();
    if (e instanceof FlashWriteError) return fail(e.message);
    throw e;
  }
  progress.end();
  return report(io, outcome, target);
}

function parse(argv: readonly string[]) {
  return parseCommandLine(argv, {
    yes: { type: "boolean" },
    "expect-serial": { type: "string" },
    "allow-fixed": { type: "boolean" },
    "allow-loop": { type: "boolean" },
    "target-file": { type: "boolean" },
    sha256: { type: "string" },
  });
}

type Options = ReturnType<typeof parse>["values"];

async function resolveTarget(
  image: string,
  device: string,
  imageSize: number,
  o: Options,
  deps: FlashDeps,
  io: FlashIO,
): Promise<Target> {
  let st: import("node:fs").Stats | undefined;
  try {
    st = statSync(device);
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT")
      throw new Error(`cannot stat ${device}: ${(e as { code?: string }).code}`);
  }
  if (o["target-file"] || st?.isFile()) {
    if (st?.isBlockDevice())
      throw new Error(`${device} is a block device; drop --target-file to write a disk`);
    if (st && !st.isFile()) throw new Error(`${device} is not a regular file`);
    if (st && st.ino === statSync(image).ino && st.dev === statSync(image).dev) {
      throw new Error(`${device} is the image itself`);
    }
    const summary = st ? `the file ${device} (${formatSize(st.size)})` : `the new file ${device}`;
    return { kind: "file", path: device, summary };
  }
  if (!st)
    throw new Error(`${device} does not exist (list disks with: lsblk -o NAME,SIZE,TRAN,MODEL,SERIAL)`);
  if (!st.isBlockDevice()) throw new Error(`${device} is neither a disk (block device) nor a regular file`);
  const real = realpathSync(device);
  const state = await (deps.probe ?? probeMachine)();
  const check = checkTarget(state, {
    target: real,
    imageSize,
    image: (deps.imageLocation ?? imageLocation)(image),
    allowFixed: o["allow-fixed"],
    allowLoop: o["allow-loop"],
  });
  if (!check.ok) {
    const lines = check.refusals.map((r) => `  - ${r.message}\n    fix: ${r.fix}`).join("\n");
    throw new Error(`refusing to write ${device}${real !== device ? ` (${real})` : ""}:\n${lines}`);
  }
  const disk = check.disk;
  const expected = o["expect-serial"];
  if (expected !== undefined && disk.serial !== expected) {
    throw new Error(
      `refusing to write ${real}: its serial number is ${disk.serial ?? "(none)"}, not the expected ${expected}`,
    );
  }
  for (const w of check.warnings) io.err(`warning: ${w}\n`);
  return { kind: "block", path: real, summary: describeDisk(disk), name: disk.name };
}

function ask(io: FlashIO, prompt: string): Promise<string | null> {
  const signal = io.signal;
  if (!signal) return io.readLine(prompt);
  const aborted = new Promise<null>((resolve) => {
    if (signal.aborted) resolve(null);
    signal.addEventListener("abort", () => resolve(null), { once: true });
  });
  return Promise.race([aborted, io.readLine(prompt)]);
}

function report(io: FlashIO, r: WriteOutcome, target: Target): number {
  const what = target.kind === "block" ? "The target" : "The file";
  const blank = `${what}'s first block is blank, so it will not boot or mount as a half-written image`;
  switch (r.status) {
    case "done": {
      const how =
        r.verify === "direct"
          ? "verified by reading it back with O_DIRECT (around the page cache)"
          : "verified from the page cache only (the target's filesystem has no O_DIRECT)";
      io.err(`Done: wrote ${formatSize(r.bytes)}, ${how}.\n`);
      io.out(`${r.sha256}  ${target.path}\n`);
      return EXIT.OK;
    }
    case "interrupted":
      io.err(
        r.phase === "write"
          ? `Interrupted after writing ${formatSize(r.written)} of ${formatSize(r.total)}. ${blank}. Flash it again to use it.\n`
          : `Interrupted during verification: everything was written but not verified. ${blank}. Flash it again to use it.\n`,
      );
      return EXIT.INTERRUPTED;
    case "verify-failed":
      io.err(
        `Verification FAILED: ${formatSize(r.length)} at byte ${r.offset} read back differently from the image. ${blank}. The card may be faulty or counterfeit (fake capacity); try another one.\n`,
      );
      return EXIT.VERIFY_FAILED;
    case "checksum-mismatch":
      io.err(
        `The image's sha256 is ${r.actual}, not the expected ${r.expected}: it is corrupt or not the image you meant. ${blank}.\n`,
      );
      return EXIT.FAILURE;
  }
}
