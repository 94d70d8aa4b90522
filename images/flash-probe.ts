/**
 * Reads the machine state the flasher's rules need: lsblk's JSON (new columns, else the pre-2.37
 * set), /proc/self/mountinfo and /proc/swaps, and where the image file lives. The only I/O behind
 * images/flash-rules.ts; tests replace it with fixtures.
 */
import { readFileSync, realpathSync, statSync } from "node:fs";
import { platform } from "../platform/index.ts";
import {
  devToMajMin,
  LSBLK_COLUMNS,
  LSBLK_COLUMNS_OLD,
  parseLsblk,
  parseMountinfo,
  parseSwaps,
} from "./block-devices.ts";
import type { MachineState } from "./flash-rules.ts";

async function capture(argv: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = await platform.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const read = async (s: typeof child.stdout) => {
    const parts: Uint8Array[] = [];
    for (let c = await s!.read(); c; c = await s!.read()) parts.push(c);
    s!.close();
    return new TextDecoder().decode(Buffer.concat(parts));
  };
  const [out, err] = await Promise.all([read(child.stdout), read(child.stderr)]);
  return { code: (await child.exited).code, out, err };
}

export async function runLsblk(): Promise<string> {
  let last = "";
  for (const columns of [LSBLK_COLUMNS, LSBLK_COLUMNS_OLD]) {
    let r: Awaited<ReturnType<typeof capture>>;
    try {
      r = await capture(["lsblk", "-J", "-b", "-o", columns]);
    } catch {
      throw new Error("lsblk is not installed (apt install util-linux / dnf install util-linux)");
    }
    if (r.code === 0) return r.out;
    last = r.err.trim();
  }
  throw new Error(`lsblk failed: ${last}`);
}

function readProc(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

export async function probeMachine(): Promise<MachineState> {
  return {
    devices: parseLsblk(await runLsblk()),
    mounts: parseMountinfo(readProc("/proc/self/mountinfo")),
    swaps: parseSwaps(readProc("/proc/swaps")),
  };
}

/** The image's device (st_dev) and resolved path, for the "image's own disk" rule. */
export function imageLocation(image: string): { majMin: string | null; path: string } {
  const path = realpathSync(image);
  return { majMin: devToMajMin(statSync(path, { bigint: true }).dev), path };
}
