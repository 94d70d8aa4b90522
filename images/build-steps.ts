/**
 * The steps of `image build` that touch the user's files or the image (images/image-build.ts
 * runs them in order): path checks, the gadget identity, the gadget's network address (checked
 * against what the image already configures), and the Pi's boot partition.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { deriveMac, deriveSerial, type GadgetSpec } from "../hw/usb-gadget.ts";
import { ifupdownUsb0Address } from "./board-edits.ts";
import type { BuildOptions } from "./build-options.ts";
import { ImageError } from "./common.ts";
import type { DeviceSetup } from "./device-files.ts";
import type { Ext4Image } from "./ext4.ts";
import type { FatImage } from "./fat.ts";
import { editConfigTxt, piMetaData, piUserData, userconfTxt } from "./first-boot.ts";

export function checkPaths(o: BuildOptions): number {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(o.base);
  } catch {
    throw new ImageError(`--base ${o.base}: no such file`);
  }
  if (!st.isFile() || st.size === 0) throw new ImageError(`--base ${o.base} is not a non-empty regular file`);
  if (/\.(xz|zip|gz|zst|7z)$/i.test(o.base)) {
    throw new ImageError(`--base ${o.base} is compressed: unpack it first (xz -dk, unzip)`);
  }
  if (existsSync(o.out)) {
    if (realpathSync(o.out) === realpathSync(o.base))
      throw new ImageError("--out must not be the base image");
    if (!o.force) throw new ImageError(`${o.out} exists: choose another --out, or add --force to replace it`);
  }
  return st.size;
}

export function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    throw new ImageError(`${what} ${path}: cannot read it`);
  }
}

export function gadgetSpec(o: BuildOptions): GadgetSpec | null {
  if (!o.board.usbGadget) return null;
  const serial = deriveSerial(randomBytes(32));
  return { serial, hostMac: deriveMac(serial, "host"), devMac: deriveMac(serial, "device") };
}

export function usbAddress(o: BuildOptions, root: Ext4Image, hasGadget: boolean): DeviceSetup["usbAddress"] {
  if (!hasGadget || !o.tcp || !/^\d+\.\d+\.\d+\.\d+$/.test(o.tcp.host) || o.tcp.host === "0.0.0.0")
    return null;
  const address = o.tcp.host;
  if (root.stat("/etc/NetworkManager") !== null) return { address, prefix: 24, via: "nm" };
  const existing = ifupdownUsb0Address(root.readFile("/etc/network/interfaces")?.toString("utf8") ?? null);
  if (existing === address) return null;
  if (existing !== null) {
    throw new ImageError(
      `the image already gives usb0 the address ${existing || "(none)"} in /etc/network/interfaces: use --tcp ${existing || "ADDR"}:${o.tcp.port}`,
    );
  }
  return { address, prefix: 24, via: "ifupdown" };
}

/** config.txt and the first-boot files; never the token (FAT has no permissions). */
export function writeBoot(o: BuildOptions, fat: FatImage, kind: string, gadget: boolean): string[] {
  const notes: string[] = [];
  const config = fat.read("config.txt")?.toString("utf8");
  if (config === undefined)
    throw new ImageError("the boot partition has no config.txt: not a Raspberry Pi OS image");
  const lines = [
    ...(gadget ? (o.board.usbGadget?.configTxt ?? []) : []),
    ...(o.pi5Kernel8 ? ["kernel=kernel8.img"] : []),
  ];
  fat.write("config.txt", editConfigTxt(config, lines));
  const user = { user: o.user ?? "qubes", passwordHash: o.passwordHash, sshKeys: [] as string[] };
  if (kind === "cloud-init") {
    fat.write("user-data", piUserData(o.hostname, o.passwordHash || o.sshKeyFile ? user : null));
    fat.write("meta-data", piMetaData(`qubes-air-${randomBytes(8).toString("hex")}`, o.hostname));
  } else if (o.passwordHash) {
    fat.write("userconf.txt", userconfTxt(user));
    // The image's own switch for SSH as well (the unit is also enabled in the root filesystem).
    if (o.sshKeyFile) fat.write("ssh", "");
  } else notes.push("no --password-hash: Raspberry Pi OS asks for a user on the console at first boot");
  return notes;
}
