/**
 * Board profiles: what the agent may assume about the hardware it runs on (LEDs, where a button
 * is wired, whether a USB device-mode port exists for the ACM+ECM gadget, memory), and detection
 * from the device tree (/proc/device-tree/{compatible,model}; the path is injectable for tests).
 * Pure data plus one read. GPIO lines are named by chip label and line name, never by number
 * (Pi kernels >= 6.6 number GPIOs dynamically). Sources: reference/images-hw.md sections 2-3.
 * Must never: guess a button that the board does not have (the Armory has none).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ButtonLine } from "./gpio-chardev.ts";

export type BoardId = "pi3" | "pi4" | "pi5" | "zero2w" | "armory-mk2" | "generic";

/** A LED by its /sys/class/leds name; the first name that exists is used (kernels renamed them). */
export interface LedSpec {
  names: readonly string[];
  role: "activity" | "power" | "status";
}

/** How to confirm where there is no button. */
export type ApprovalAlternative = "console" | "hid";

export interface UsbGadgetCaps {
  /** The device-mode port, as printed on the board. */
  port: string;
  functions: readonly ("acm" | "ecm")[];
  /** Lines for config.txt (Pi) to put the controller in peripheral mode. */
  configTxt: readonly string[];
  /** Kernel modules to load before configuring the gadget. */
  modules: readonly string[];
}

/**
 * An optional SSD1306-class 128x64 I2C OLED (a common Pi hat or a four-wire module), driven by
 * the kernel's framebuffer driver (ssd1307fb, or ssd130x's fbdev emulation on newer kernels)
 * and found by its framebuffer name (hw/display/fb-display.ts).
 */
export interface DisplayCaps {
  kind: "ssd1306-i2c";
  /** Where to wire it, as printed on the board. */
  wiring: string;
  /** Lines for config.txt that load the driver (the address is the module's usual 0x3c). */
  configTxt: readonly string[];
}

export interface BoardProfile {
  id: BoardId;
  name: string;
  /** Userland architecture the agent needs: the Bun binary (arm64/x64) or the Node bundle (armhf). */
  arch: "arm64" | "armhf" | "x64" | "any";
  runtime: "bun" | "node";
  /** LEDs in order of preference for the confirmation indicator (first = the one we blink). */
  leds: readonly LedSpec[];
  /** Suggested wiring for the approval button: chip by label, line by name; [] when none. */
  buttons: readonly ButtonLine[];
  /** Used when `buttons` is empty (or the user configures it): a local key, never the host. */
  approvalAlternative: ApprovalAlternative | null;
  /** Null: no device-mode USB port (the board is reached over Ethernet or a USB-serial adapter). */
  usbGadget: UsbGadgetCaps | null;
  /** The optional small display this board can take; null: none can be attached. */
  display: DisplayCaps | null;
  /** The text console a screen attached to the board shows (HDMI), for one prompt line; null: none. */
  screenConsole: string | null;
  /** RAM sizes sold, in MiB. */
  memoryMiB: readonly number[];
  /** Device-tree compatible strings that identify the board (most specific first). */
  compatible: readonly string[];
  /** Fallback match on /proc/device-tree/model. */
  model: RegExp;
}

const PI_LEDS: readonly LedSpec[] = [
  { names: ["ACT", "led0"], role: "activity" },
  { names: ["PWR", "led1"], role: "power" },
];
const PI_OLED: DisplayCaps = {
  kind: "ssd1306-i2c",
  wiring: "I2C1: SDA GPIO2 (pin 3), SCL GPIO3 (pin 5), 3V3 (pin 1), GND (pin 9)",
  configTxt: ["dtparam=i2c_arm=on", "dtoverlay=ssd1306,address=0x3c,width=128,height=64"],
};
const PI_GADGET_MODULES = ["dwc2", "libcomposite"];
const button = (chipLabel: string): ButtonLine[] => [{ chipLabel, line: "GPIO17", activeLow: true }];

export const BOARDS: Readonly<Record<BoardId, BoardProfile>> = {
  pi3: {
    id: "pi3",
    name: "Raspberry Pi 3",
    arch: "arm64",
    runtime: "bun",
    leds: PI_LEDS,
    buttons: button("pinctrl-bcm2835"),
    approvalAlternative: null,
    // USB goes through the on-board hub/LAN chip: no device-mode port.
    usbGadget: null,
    display: PI_OLED,
    screenConsole: "/dev/tty1",
    memoryMiB: [512, 1024],
    compatible: ["raspberrypi,3-model-b-plus", "raspberrypi,3-model-b", "raspberrypi,3-model-a-plus"],
    model: /^Raspberry Pi 3\b/,
  },
  zero2w: {
    id: "zero2w",
    name: "Raspberry Pi Zero 2 W",
    arch: "arm64",
    runtime: "bun",
    // The Zero 2 W has a single (activity) LED.
    leds: [{ names: ["ACT", "led0"], role: "activity" }],
    buttons: button("pinctrl-bcm2835"),
    approvalAlternative: null,
    usbGadget: {
      port: "micro-USB OTG port (marked USB, not PWR IN)",
      functions: ["acm", "ecm"],
      configTxt: ["dtoverlay=dwc2,dr_mode=peripheral"],
      modules: PI_GADGET_MODULES,
    },
    display: PI_OLED,
    screenConsole: "/dev/tty1",
    memoryMiB: [512],
    compatible: ["raspberrypi,model-zero-2-w"],
    model: /^Raspberry Pi Zero 2\b/,
  },
  pi4: {
    id: "pi4",
    name: "Raspberry Pi 4 / 400 / CM4",
    arch: "arm64",
    runtime: "bun",
    leds: PI_LEDS,
    buttons: button("pinctrl-bcm2711"),
    approvalAlternative: null,
    usbGadget: {
      port: "USB-C power port (power the Pi through it from the host)",
      functions: ["acm", "ecm"],
      configTxt: ["dtoverlay=dwc2,dr_mode=peripheral"],
      modules: PI_GADGET_MODULES,
    },
    display: PI_OLED,
    screenConsole: "/dev/tty1",
    memoryMiB: [1024, 2048, 4096, 8192],
    compatible: ["raspberrypi,4-model-b", "raspberrypi,400", "raspberrypi,4-compute-module"],
    model: /^Raspberry Pi (4|400|Compute Module 4)\b/,
  },
  pi5: {
    id: "pi5",
    name: "Raspberry Pi 5 / 500 / CM5",
    arch: "arm64",
    runtime: "bun",
    leds: PI_LEDS,
    buttons: button("pinctrl-rp1"),
    approvalAlternative: null,
    usbGadget: {
      port: "USB-C power port (needs a host port that supplies enough current)",
      functions: ["acm", "ecm"],
      // dr_mode=peripheral is required on the Pi 5 (BlueOS PR #3783).
      configTxt: ["dtoverlay=dwc2,dr_mode=peripheral"],
      modules: PI_GADGET_MODULES,
    },
    display: PI_OLED,
    screenConsole: "/dev/tty1",
    memoryMiB: [1024, 2048, 4096, 8192, 16384],
    compatible: ["raspberrypi,5-model-b", "raspberrypi,500", "raspberrypi,5-compute-module"],
    model: /^Raspberry Pi (5|500|Compute Module 5)\b/,
  },
  "armory-mk2": {
    id: "armory-mk2",
    name: "USB armory Mk II",
    arch: "armhf",
    runtime: "node",
    // LED_WHITE defaults to a heartbeat (the board is alive); LED_BLUE is free for us.
    leds: [
      { names: ["LED_BLUE"], role: "status" },
      { names: ["LED_WHITE"], role: "activity" },
    ],
    buttons: [],
    approvalAlternative: "console",
    usbGadget: {
      port: "USB-C plug/receptacle (device mode)",
      functions: ["acm", "ecm"],
      configTxt: [],
      modules: ["libcomposite"],
    },
    display: null,
    screenConsole: null,
    memoryMiB: [512, 1024],
    // usbarmory/usbarmory kernel_conf/mark-two DTS files, and OpenWrt's mainline name; any other
    // "*usbarmory-mkII*" string matches too (identifyBoard).
    compatible: [
      "inversepath,imx6ulz-usbarmory-mkII",
      "inversepath,imx6ul-usbarmory-mkII",
      "inversepath,imx6ull-usbarmory-mkII",
      "inversepath,imx6ul-usbarmory-mkII-lan",
      "withsecure,imx6ulz-usbarmory-mk2",
    ],
    model: /USB armory Mk ?II|armory Mk ?II/i,
  },
  generic: {
    id: "generic",
    name: "Generic Linux machine",
    arch: "any",
    runtime: "bun",
    leds: [],
    buttons: [],
    approvalAlternative: "console",
    usbGadget: null,
    display: null,
    screenConsole: null,
    memoryMiB: [],
    compatible: [],
    model: /$^/,
  },
};

export interface DetectedBoard {
  profile: BoardProfile;
  /** /proc/device-tree/model, or null where there is no device tree (x86 VMs). */
  model: string | null;
  compatible: string[];
}

/** Device-tree strings are NUL-terminated (compatible is a NUL-separated list). */
export function splitDtStrings(raw: string): string[] {
  return raw.split("\0").filter((s) => s.length > 0);
}

/** Pure: picks the profile for a model and compatible list. */
export function identifyBoard(model: string | null, compatible: readonly string[]): BoardProfile {
  const ids: BoardId[] = ["pi5", "pi4", "zero2w", "pi3", "armory-mk2"];
  for (const id of ids) {
    if (BOARDS[id].compatible.some((c) => compatible.includes(c)))
      return withVariant(BOARDS[id], model, compatible);
  }
  if (compatible.some((c) => /usbarmory-mk(ii|2)/i.test(c)))
    return withVariant(BOARDS["armory-mk2"], model, compatible);
  if (model) {
    for (const id of ids) if (BOARDS[id].model.test(model)) return withVariant(BOARDS[id], model, compatible);
  }
  return BOARDS.generic;
}

/**
 * The Armory Mk II LAN ("WithSecure POE armory Mk II", compatible "...-mkII-lan") has its USB
 * port in host mode (its DTS sets dr_mode = "host"): it is reached over Ethernet, no gadget.
 */
function withVariant(
  profile: BoardProfile,
  model: string | null,
  compatible: readonly string[],
): BoardProfile {
  const lan = compatible.some((c) => /usbarmory.*-lan$/i.test(c)) || /\bPOE\b|\bLAN\b/.test(model ?? "");
  if (profile.id === "armory-mk2" && lan) {
    return { ...profile, name: "USB armory Mk II LAN", usbGadget: null };
  }
  return profile;
}

function readDt(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** Reads the device tree under `dtRoot` (default /proc/device-tree) and identifies the board. */
export function detectBoard(dtRoot = "/proc/device-tree"): DetectedBoard {
  const modelRaw = readDt(join(dtRoot, "model"));
  const model = modelRaw === null ? null : (splitDtStrings(modelRaw)[0] ?? null);
  const compatible = splitDtStrings(readDt(join(dtRoot, "compatible")) ?? "");
  return { profile: identifyBoard(model, compatible), model, compatible };
}

/** MemTotal from /proc/meminfo text, in MiB (null when absent). */
export function memTotalMiB(meminfo: string): number | null {
  const m = /^MemTotal:\s+(\d+) kB$/m.exec(meminfo);
  return m ? Math.floor(Number(m[1]) / 1024) : null;
}
