/** Board detection from fake /proc/device-tree directories, and the profile data's invariants. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BOARDS, detectBoard, identifyBoard, memTotalMiB, splitDtStrings } from "./boards.ts";

function fakeDt(model: string | null, compatible: string[] | null): string {
  const dir = mkdtempSync(join(tmpdir(), "qa-dt-"));
  if (model !== null) writeFileSync(join(dir, "model"), `${model}\0`);
  if (compatible !== null) writeFileSync(join(dir, "compatible"), compatible.map((c) => `${c}\0`).join(""));
  return dir;
}

describe("detectBoard", () => {
  const cases: [string, string[], string][] = [
    ["Raspberry Pi 3 Model B Plus Rev 1.3", ["raspberrypi,3-model-b-plus", "brcm,bcm2837"], "pi3"],
    ["Raspberry Pi Zero 2 W Rev 1.0", ["raspberrypi,model-zero-2-w", "brcm,bcm2837"], "zero2w"],
    ["Raspberry Pi 4 Model B Rev 1.5", ["raspberrypi,4-model-b", "brcm,bcm2711"], "pi4"],
    ["Raspberry Pi 400 Rev 1.0", ["raspberrypi,400", "brcm,bcm2711"], "pi4"],
    ["Raspberry Pi 5 Model B Rev 1.0", ["raspberrypi,5-model-b", "brcm,bcm2712"], "pi5"],
    ["F-Secure USB armory Mk II", ["inversepath,imx6ulz-usbarmory-mkII", "fsl,imx6ull"], "armory-mk2"],
  ];
  for (const [model, compatible, id] of cases) {
    test(`${model} -> ${id}`, () => {
      const d = detectBoard(fakeDt(model, compatible));
      expect(d.profile.id as string).toBe(id);
      expect(d.model).toBe(model);
      expect(d.compatible).toEqual(compatible);
    });
  }

  test("model alone is enough when compatible is unknown", () => {
    expect(identifyBoard("Raspberry Pi 5 Model B Rev 1.1", ["brcm,bcm2712-future"]).id).toBe("pi5");
    expect(identifyBoard("Raspberry Pi Compute Module 4 Rev 1.0", []).id).toBe("pi4");
  });

  test("the Armory Mk II LAN is an Armory without a USB gadget", () => {
    const lan = detectBoard(
      fakeDt("WithSecure POE armory Mk II", ["inversepath,imx6ul-usbarmory-mkII-lan", "fsl,imx6ul"]),
    );
    expect(lan.profile.id).toBe("armory-mk2");
    expect(lan.profile.usbGadget).toBeNull();
    expect(lan.profile.leds.map((l) => l.names[0])).toEqual(["LED_BLUE", "LED_WHITE"]);
  });

  test("no device tree (x86 VM) and unknown boards are generic", () => {
    expect(detectBoard(join(tmpdir(), "qa-no-such-dt")).profile.id).toBe("generic");
    expect(detectBoard(fakeDt("Pine64 RockPro64", ["pine64,rockpro64"])).profile.id).toBe("generic");
    expect(detectBoard(fakeDt(null, null)).model).toBeNull();
  });

  test("splitDtStrings and memTotalMiB", () => {
    expect(splitDtStrings("a\0b\0")).toEqual(["a", "b"]);
    expect(memTotalMiB("MemTotal:        3884436 kB\nMemFree: 1 kB\n")).toBe(3793);
    expect(memTotalMiB("nothing")).toBeNull();
  });
});

describe("profiles", () => {
  test("buttons by chip label and line name; the Armory has none and a local alternative", () => {
    expect(BOARDS.pi4.buttons).toEqual([{ chipLabel: "pinctrl-bcm2711", line: "GPIO17", activeLow: true }]);
    expect(BOARDS.pi5.buttons[0]!.chipLabel).toBe("pinctrl-rp1");
    expect(BOARDS.pi3.buttons[0]!.chipLabel).toBe("pinctrl-bcm2835");
    expect(BOARDS.zero2w.buttons[0]!.chipLabel).toBe("pinctrl-bcm2835");
    expect(BOARDS["armory-mk2"].buttons).toEqual([]);
    expect(BOARDS["armory-mk2"].approvalAlternative).toBe("console");
    for (const b of Object.values(BOARDS)) {
      expect(b.buttons.length > 0 || b.approvalAlternative !== null).toBe(true);
    }
  });

  test("USB gadget only where there is a device-mode port", () => {
    const withGadget = Object.values(BOARDS)
      .filter((b) => b.usbGadget)
      .map((b) => b.id)
      .sort();
    expect(withGadget).toEqual(["armory-mk2", "pi4", "pi5", "zero2w"]);
    for (const id of ["pi4", "pi5", "zero2w"] as const) {
      expect(BOARDS[id].usbGadget!.configTxt).toContain("dtoverlay=dwc2,dr_mode=peripheral");
      expect(BOARDS[id].usbGadget!.functions).toEqual(["acm", "ecm"]);
    }
  });

  test("LEDs: Pi ACT (led0 on old kernels) and PWR; the Armory runs on Node", () => {
    expect(BOARDS.pi4.leds[0]!.names).toEqual(["ACT", "led0"]);
    expect(BOARDS.pi5.leds[1]!.names).toEqual(["PWR", "led1"]);
    expect(BOARDS["armory-mk2"].runtime).toBe("node");
    expect(BOARDS.zero2w.memoryMiB).toEqual([512]);
  });
});

describe("display capabilities", () => {
  test("Pis can take an SSD1306 on I2C1 and have an HDMI console; the Armory and generic boards neither", () => {
    for (const id of ["pi3", "zero2w", "pi4", "pi5"] as const) {
      expect(BOARDS[id].display?.kind).toBe("ssd1306-i2c");
      expect(BOARDS[id].display?.configTxt).toContain("dtoverlay=ssd1306,address=0x3c,width=128,height=64");
      expect(BOARDS[id].screenConsole).toBe("/dev/tty1");
    }
    expect(BOARDS["armory-mk2"].display).toBeNull();
    expect(BOARDS["armory-mk2"].screenConsole).toBeNull();
    expect(BOARDS.generic.display).toBeNull();
  });
});
