/**
 * The device's USB gadget through configfs (libcomposite): a CDC-ACM serial port and a CDC-ECM
 * network interface in one configuration, with a stable serial number so the host side (sys-usb
 * assigning to sys-remote, udev rules from hw/udev.ts) recognises the device by identity.
 *
 * gadgetPlan() is pure: the ordered list of configfs mkdirs, writes and symlinks. applyGadget()
 * runs a plan against a root (injectable, tests use a temp dir); gadgetShellScript() emits the
 * same plan as a POSIX shell script for the image builder. Attributes must be written before the
 * gadget is bound to a UDC, so the bind is always the last step. Must never: write a value that is
 * not validated here (serials and MACs end up in shell scripts and udev rules).
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BoardProfile } from "./boards.ts";

/** Linux Foundation "Multifunction Composite Gadget", the usual ID for libcomposite gadgets. */
export const GADGET_VENDOR_ID = 0x1d6b;
export const GADGET_PRODUCT_ID = 0x0104;
export const GADGET_NAME = "qubes-air";
export const CONFIGFS_ROOT = "/sys/kernel/config";
export const UDC_DIR = "/sys/class/udc";

export type GadgetStep =
  | { op: "mkdir"; path: string }
  | { op: "write"; path: string; value: string }
  | { op: "symlink"; target: string; path: string }
  /** Writes the UDC file: a controller name, or null for the first one in /sys/class/udc. */
  | { op: "bind"; path: string; udc: string | null }
  | { op: "unlink"; path: string }
  | { op: "rmdir"; path: string };

export interface GadgetSpec {
  serial: string;
  /** MAC of the host's end of the ECM link, and of ours. */
  hostMac: string;
  devMac: string;
  /** Default: the board's functions. */
  functions?: readonly ("acm" | "ecm")[];
  /** A specific controller (e.g. "fe980000.usb"); default the first one present. */
  udc?: string;
}

const SERIAL_RE = /^[A-Za-z0-9._-]{1,64}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function checkSerial(serial: string): string {
  if (!SERIAL_RE.test(serial)) throw new Error(`bad USB serial number ${JSON.stringify(serial)}`);
  return serial;
}

/**
 * The gadget's USB strings: with its serial, what sys-remote sees in the /dev/serial/by-id name
 * and what a pending enrolment records (host/daemon/enrolments.ts).
 */
export function gadgetStrings(board: { readonly name: string }): { manufacturer: string; product: string } {
  return { manufacturer: "qubes-air", product: `qubes-air ${board.name}` };
}

/** A stable serial from the device's identity (e.g. its static public key or machine-id). */
export function deriveSerial(identity: Uint8Array): string {
  const h = createHash("sha256").update("qubes-air usb serial\0").update(identity).digest("hex");
  return `QA-${h.slice(0, 16).toUpperCase()}`;
}

/** A stable, locally administered unicast MAC for one end of the ECM link. */
export function deriveMac(serial: string, end: "host" | "device"): string {
  const b = createHash("sha256")
    .update(`qubes-air usb mac\0${end}\0${checkSerial(serial)}`)
    .digest();
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

const hex4 = (n: number) => `0x${n.toString(16).padStart(4, "0")}`;

export function gadgetPlan(board: BoardProfile, spec: GadgetSpec): GadgetStep[] {
  const caps = board.usbGadget;
  if (!caps) throw new Error(`${board.name} has no USB device-mode port: no gadget`);
  checkSerial(spec.serial);
  for (const mac of [spec.hostMac, spec.devMac]) {
    if (!MAC_RE.test(mac)) throw new Error(`bad MAC address ${JSON.stringify(mac)}`);
  }
  if (spec.udc !== undefined && !/^[A-Za-z0-9._:-]{1,64}$/.test(spec.udc))
    throw new Error(`bad UDC ${spec.udc}`);
  const functions = spec.functions ?? caps.functions;
  for (const f of functions) {
    if (!caps.functions.includes(f)) throw new Error(`${board.name} gadget does not offer ${f}`);
  }
  const g = `usb_gadget/${GADGET_NAME}`;
  const w = (path: string, value: string): GadgetStep => ({ op: "write", path: `${g}/${path}`, value });
  const d = (path: string): GadgetStep => ({ op: "mkdir", path: `${g}${path ? `/${path}` : ""}` });
  const steps: GadgetStep[] = [
    d(""),
    w("idVendor", hex4(GADGET_VENDOR_ID)),
    w("idProduct", hex4(GADGET_PRODUCT_ID)),
    w("bcdDevice", "0x0100"),
    w("bcdUSB", "0x0200"),
    // Miscellaneous / common class / interface association: a composite device with ACM.
    w("bDeviceClass", "0xef"),
    w("bDeviceSubClass", "0x02"),
    w("bDeviceProtocol", "0x01"),
    d("strings/0x409"),
    w("strings/0x409/serialnumber", spec.serial),
    w("strings/0x409/manufacturer", gadgetStrings(board).manufacturer),
    w("strings/0x409/product", gadgetStrings(board).product),
    d("configs/c.1"),
    d("configs/c.1/strings/0x409"),
    w("configs/c.1/strings/0x409/configuration", functions.map((f) => f.toUpperCase()).join("+")),
    w("configs/c.1/MaxPower", "250"),
  ];
  for (const f of functions) {
    steps.push(d(`functions/${f}.usb0`));
    if (f === "ecm")
      steps.push(
        w("functions/ecm.usb0/host_addr", spec.hostMac),
        w("functions/ecm.usb0/dev_addr", spec.devMac),
      );
  }
  for (const f of functions) {
    steps.push({ op: "symlink", target: `${g}/functions/${f}.usb0`, path: `${g}/configs/c.1/${f}.usb0` });
  }
  steps.push({ op: "bind", path: `${g}/UDC`, udc: spec.udc ?? null });
  return steps;
}

/** Undoes a gadget: unbind, then remove links and directories in reverse order. */
export function teardownPlan(functions: readonly ("acm" | "ecm")[] = ["acm", "ecm"]): GadgetStep[] {
  const g = `usb_gadget/${GADGET_NAME}`;
  return [
    { op: "write", path: `${g}/UDC`, value: "" },
    ...functions.map((f): GadgetStep => ({ op: "unlink", path: `${g}/configs/c.1/${f}.usb0` })),
    { op: "rmdir", path: `${g}/configs/c.1/strings/0x409` },
    { op: "rmdir", path: `${g}/configs/c.1` },
    ...functions.map((f): GadgetStep => ({ op: "rmdir", path: `${g}/functions/${f}.usb0` })),
    { op: "rmdir", path: `${g}/strings/0x409` },
    { op: "rmdir", path: g },
  ];
}

export interface ApplyOptions {
  configfsRoot?: string;
  udcDir?: string;
  /** Teardown steps: missing files are not errors. */
  ignoreMissing?: boolean;
}

/** Runs a plan. Throws on the first failing step, naming it. */
export function applyGadget(steps: readonly GadgetStep[], options: ApplyOptions = {}): void {
  const root = options.configfsRoot ?? CONFIGFS_ROOT;
  for (const s of steps) {
    const p = join(root, s.path);
    try {
      if (s.op === "mkdir") mkdirSync(p, { recursive: true });
      else if (s.op === "write") writeFileSync(p, s.value);
      else if (s.op === "symlink") symlinkSync(join(root, s.target), p);
      else if (s.op === "unlink") unlinkSync(p);
      else if (s.op === "rmdir") rmdirSync(p);
      else {
        const udcDir = options.udcDir ?? UDC_DIR;
        let udc = s.udc;
        if (udc === null) {
          const found = (() => {
            try {
              return readdirSync(udcDir).sort();
            } catch {
              return [];
            }
          })();
          udc = found[0] ?? null;
          if (udc === null) {
            throw new Error(
              `no USB device controller in ${udcDir} (is dtoverlay=dwc2,dr_mode=peripheral set?)`,
            );
          }
        }
        writeFileSync(p, udc);
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (options.ignoreMissing && code === "ENOENT") continue;
      throw new Error(`usb gadget: ${s.op} ${p}: ${code ?? (e as Error).message}`);
    }
  }
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The same plan as a shell script (for the image builder's first-boot unit). CONFIGFS and
 * UDC_DIR can be overridden from the environment (tests run it against a temp dir).
 */
export function gadgetShellScript(board: BoardProfile, spec: GadgetSpec): string {
  const steps = gadgetPlan(board, spec);
  const modules = board.usbGadget!.modules;
  const line = (s: GadgetStep): string => {
    const p = `"$CONFIGFS"/${q(s.path)}`;
    if (s.op === "mkdir") return `mkdir -p ${p}`;
    if (s.op === "write") return `printf '%s' ${q(s.value)} > ${p}`;
    if (s.op === "symlink") return `ln -s "$CONFIGFS"/${q(s.target)} ${p}`;
    if (s.op === "bind") {
      const pick = s.udc === null ? `udc=$(ls "$UDC_DIR" | head -n 1)` : `udc=${q(s.udc)}`;
      return `${pick}\n[ -n "$udc" ] || { echo "no USB device controller in $UDC_DIR (dtoverlay=dwc2,dr_mode=peripheral?)" >&2; exit 1; }\nprintf '%s' "$udc" > ${p}`;
    }
    return `# ${s.op} ${s.path}`;
  };
  const teardown = teardownPlan(spec.functions ?? board.usbGadget!.functions).map((s) => {
    const p = `"$CONFIGFS"/${q(s.path)}`;
    if (s.op === "write") return `  [ -e ${p} ] && printf '' > ${p} || true`;
    if (s.op === "unlink") return `  rm -f ${p}`;
    return `  [ -d ${p} ] && rmdir ${p} || true`;
  });
  return [
    "#!/bin/sh",
    `# qubes-air USB gadget (ACM + ECM) for ${board.name}; generated by hw/usb-gadget.ts.`,
    "set -eu",
    `CONFIGFS="\${CONFIGFS:-${CONFIGFS_ROOT}}"`,
    `UDC_DIR="\${UDC_DIR:-${UDC_DIR}}"`,
    // Modules only for the real configfs (a test run against a temp dir loads nothing).
    ...modules.map(
      (m) =>
        `if [ "$CONFIGFS" = ${CONFIGFS_ROOT} ] && command -v modprobe >/dev/null 2>&1; then modprobe ${q(m)} || true; fi`,
    ),
    `if [ -d "$CONFIGFS"/${q(`usb_gadget/${GADGET_NAME}`)} ]; then`,
    ...teardown,
    "fi",
    ...steps.map(line),
    "",
  ].join("\n");
}
