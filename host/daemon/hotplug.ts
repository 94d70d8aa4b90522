/**
 * Hotplug by polling (qubes-salt-usb.md §2.3): a device passed to sys-remote shows up as a
 * /dev/serial/by-id/usb-...-if00 entry (CDC-ACM) or a network interface in /sys/class/net
 * (CDC-ECM/NCM/RNDIS). inotify does not see sysfs and udev rules would need root, so both
 * directories are listed every `intervalMs` (default 250 ms, so a change is seen well within
 * 2 s) and differences are reported. Interfaces are reported with their MAC (`address`).
 * Matching is by name or MAC, never by a ttyACM/usbN index: those change with plug order.
 *
 * The first scan only sets the baseline; callers check the present state themselves at start.
 * Must never: throw out of the poll loop (a vanished directory is an empty one), or overlap scans.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { normalizeMac } from "./registry.ts";

export const DEFAULT_NET_DIR = "/sys/class/net";
export const HOTPLUG_INTERVAL_MS = 250;

export interface HotplugEvents {
  serial(name: string, present: boolean): void;
  net(iface: string, mac: string | null, present: boolean): void;
}

export interface HotplugOptions {
  readonly byIdDir: string;
  readonly netDir: string;
  readonly intervalMs?: number;
}

export class Hotplug {
  private serial = new Set<string>();
  private net = new Map<string, string | null>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private readonly o: HotplugOptions,
    private readonly events: HotplugEvents,
  ) {}

  async start(): Promise<void> {
    await this.scan(false);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.scan(true)
        .catch(() => {})
        .finally(() => this.schedule());
    }, this.o.intervalMs ?? HOTPLUG_INTERVAL_MS);
  }

  private async scan(report: boolean): Promise<void> {
    const serial = new Set(await list(this.o.byIdDir));
    const ifaces = await list(this.o.netDir);
    const net = new Map<string, string | null>();
    for (const iface of ifaces) {
      net.set(iface, this.net.has(iface) ? this.net.get(iface)! : await macOf(join(this.o.netDir, iface)));
    }
    const before = { serial: this.serial, net: this.net };
    this.serial = serial;
    this.net = net;
    if (!report || this.stopped) return;
    for (const name of serial)
      if (!before.serial.has(name)) this.safely(() => this.events.serial(name, true));
    for (const name of before.serial)
      if (!serial.has(name)) this.safely(() => this.events.serial(name, false));
    for (const [iface, mac] of net)
      if (!before.net.has(iface)) this.safely(() => this.events.net(iface, mac, true));
    for (const [iface, mac] of before.net) {
      if (!net.has(iface)) this.safely(() => this.events.net(iface, mac, false));
    }
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch {
      // a handler's fault must not stop hotplug for every other device
    }
  }
}

/** The entries of a directory, sorted; a missing one is empty. */
export async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

async function macOf(ifaceDir: string): Promise<string | null> {
  try {
    const text = await readFile(join(ifaceDir, "address"), "utf-8");
    return normalizeMac(text.trim());
  } catch {
    return null;
  }
}

/**
 * Does a by-id entry belong to this remote? Its exact by-id name, or a name holding its USB
 * serial as a whole field: udev names are usb-<vendor>_<product>_<serial>-if<NN>[-port<N>], so
 * the serial sits between "_" and "-" (serial "ABC1" must not match a device "ABC12").
 */
export function byIdMatches(name: string, byId: string | null, usbSerial: string | undefined): boolean {
  if (byId !== null && name === byId) return true;
  return usbSerial !== undefined && (name.includes(`_${usbSerial}-`) || name.endsWith(`_${usbSerial}`));
}

/** The by-id entry to open for a remote: the exact name if present, else one holding its USB serial. */
export async function findByIdEntry(
  byIdDir: string,
  byId: string | null,
  usbSerial: string | undefined,
): Promise<string | null> {
  const names = await list(byIdDir);
  if (byId !== null && names.includes(byId)) return byId;
  if (usbSerial === undefined) return null;
  const matching = names.filter((n) => byIdMatches(n, null, usbSerial));
  return matching.find((n) => n.endsWith("-if00")) ?? matching[0] ?? null;
}
