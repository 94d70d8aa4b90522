/**
 * Confirmation by a USB HID key (a keyboard, foot switch or macro key plugged into the device's
 * own host port), through node-hid (3.4.0; loads under Bun and Node, needs libusb-1.0-0 / hidraw
 * access). node-hid is an optional dependency loaded at open time: without it, open() fails with
 * a message saying how to install it. Reports are boot-protocol keyboard reports
 * ([modifiers, reserved, key1..key6], optionally after a report id); a key counts when it goes
 * down, and only while a wait is pending. Default keys: `y` approves, `n` denies.
 * Must never: accept input from the host: only a device plugged into the device itself.
 */

import type { ApprovalInput, Verdict } from "./input.ts";
import { PressQueue } from "./press-queue.ts";

/** HID usage IDs (keyboard page 0x07). */
export const HID_KEY = { y: 0x1c, n: 0x11, enter: 0x28, escape: 0x29 } as const;

export interface HidInputOptions {
  vendorId: number;
  productId: number;
  /** A hidraw path instead of vendor/product (when several identical keys are plugged in). */
  path?: string;
  approveKeys?: readonly number[];
  denyKeys?: readonly number[];
  /** The device prefixes each report with a report id byte. */
  reportId?: boolean;
}

/** The keys pressed in a boot keyboard report (usages 0 and 1 = none / rollover error). */
export function keysInReport(report: Uint8Array, reportId = false): number[] {
  const keys = report.subarray(reportId ? 3 : 2, reportId ? 9 : 8);
  return [...keys].filter((k) => k > 1);
}

/** Keys down in `now` that were not down in `before`. */
export function newKeys(before: readonly number[], now: readonly number[]): number[] {
  return now.filter((k) => !before.includes(k));
}

interface HidDevice {
  on(event: "data", cb: (data: Uint8Array) => void): void;
  on(event: "error", cb: (err: unknown) => void): void;
  close(): void;
}
interface NodeHid {
  HID: new (...args: unknown[]) => HidDevice;
}

/** Loads node-hid, or throws an error that says how to get it. */
export async function loadNodeHid(moduleName = "node-hid"): Promise<NodeHid> {
  try {
    const mod = (await import(moduleName)) as { default?: NodeHid } & NodeHid;
    const hid = mod.HID ? mod : mod.default;
    if (!hid?.HID) throw new Error("module has no HID class");
    return hid;
  } catch (e) {
    throw new Error(
      `USB HID confirmation needs the node-hid package (npm install node-hid@3.4.0, and apt install libusb-1.0-0): ${
        e instanceof Error ? e.message : String(e)
      }`,
    );
  }
}

export class HidInput implements ApprovalInput {
  readonly description: string;
  private down: number[] = [];
  private readonly queue: PressQueue;
  private closed = false;

  constructor(
    private readonly device: HidDevice,
    private readonly options: HidInputOptions,
  ) {
    const id = (n: number) => n.toString(16).padStart(4, "0");
    this.description = `hid ${options.path ?? `${id(options.vendorId)}:${id(options.productId)}`}`;
    this.queue = new PressQueue(this.description);
    device.on("data", (data) => this.onReport(new Uint8Array(data)));
    device.on("error", () => {
      this.closed = true;
      this.queue.closed = true; // unplugged: waits fail at once, the manager denies
    });
  }

  static async open(
    options: HidInputOptions,
    loader: () => Promise<NodeHid> = loadNodeHid,
  ): Promise<HidInput> {
    const hid = await loader();
    const device = options.path
      ? new hid.HID(options.path)
      : new hid.HID(options.vendorId, options.productId);
    return new HidInput(device, options);
  }

  /** Feeds one input report (also used by tests). */
  onReport(report: Uint8Array): void {
    const now = keysInReport(report, this.options.reportId);
    const pressed = newKeys(this.down, now);
    this.down = now;
    const approve = this.options.approveKeys ?? [HID_KEY.y];
    const deny = this.options.denyKeys ?? [HID_KEY.n];
    for (const k of pressed) {
      const v: Verdict | null = approve.includes(k) ? "approve" : deny.includes(k) ? "deny" : null;
      if (v && this.queue.deliver(v)) return;
    }
  }

  waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    return this.queue.wait(signal);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.closed = true;
    this.device.close();
  }
}
