/**
 * The GPIO button: press classification, chip/line lookup and the request, the event loop
 * (against a simulated kernel), the real libc FFI path as far as this machine allows, and a
 * kernel gpio-sim chip when the kernel offers one (skipped otherwise, with the reason).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AssertionError } from "../core/errors.ts";
import { loadFfiSyscalls, openGpioButton } from "./gpio-button.ts";
import { ChardevButton, findLine, GpioLineError } from "./gpio-chardev.ts";
import { LineFlag } from "./gpio-uapi.ts";
import { edgeToButton, PressClassifier } from "./press.ts";
import { FakeGpioKernel } from "./testing/fake-gpiochip.ts";

const PI4_BUTTON = { chipLabel: "pinctrl-bcm2711", line: "GPIO17", activeLow: true };
const ms = (n: number) => BigInt(n) * 1_000_000n;

function pi4Kernel() {
  const lines = Array.from({ length: 58 }, (_, i) => `GPIO${i}`);
  return new FakeGpioKernel([
    { label: "raspberrypi-exp-gpio", lines: ["BT_ON", "WL_ON", "PWR_LED_OFF"] },
    { label: "pinctrl-bcm2711", lines },
  ]);
}

describe("PressClassifier", () => {
  test("short press approves, long press denies, bounce and orphan releases do not count", () => {
    const c = new PressClassifier(1500, 30);
    expect(c.feed("release", ms(5))).toBeNull(); // held before the wait: no press seen
    expect(c.feed("press", ms(10))).toBeNull();
    expect(c.feed("release", ms(20))).toBeNull(); // 10 ms bounce
    c.feed("press", ms(100));
    expect(c.feed("release", ms(400))).toBe("approve");
    c.feed("press", ms(1000));
    expect(c.feed("release", ms(2499))).toBe("approve");
    c.feed("press", ms(3000));
    expect(c.feed("release", ms(4500))).toBe("deny");
    c.feed("press", ms(5000));
    c.reset();
    expect(c.feed("release", ms(5100))).toBeNull();
  });

  test("edge direction follows the wiring", () => {
    expect(edgeToButton("falling", true)).toBe("press");
    expect(edgeToButton("rising", true)).toBe("release");
    expect(edgeToButton("rising", false)).toBe("press");
  });
});

describe("chardev button on a simulated kernel", () => {
  let k: FakeGpioKernel;

  test("finds the chip by label and the line by name, requests input+edges+pull-up+debounce", () => {
    k = pi4Kernel();
    expect(findLine(k, PI4_BUTTON, k.devDir)).toMatchObject({
      chipName: "gpiochip1",
      offset: 17,
      used: false,
    });
    const b = ChardevButton.open(k, PI4_BUTTON, { devDir: k.devDir });
    const req = k.requests[0]!;
    expect(req.offset).toBe(17);
    expect(req.consumer).toBe("qubes-air");
    expect(req.debounceUs).toBe(10_000);
    const want = LineFlag.INPUT | LineFlag.EDGE_RISING | LineFlag.EDGE_FALLING | LineFlag.BIAS_PULL_UP;
    expect(req.flags).toBe(want);
    expect(b.description).toBe("gpio pinctrl-bcm2711/GPIO17");
    b.close();
    expect(k.openFds).toBe(0);
  });

  test("clear errors: no such chip, no such line, line in use", () => {
    k = pi4Kernel();
    expect(() => findLine(k, { ...PI4_BUTTON, chipLabel: "pinctrl-rp1" }, k.devDir)).toThrow(
      "no gpio chip labelled pinctrl-rp1 in " +
        k.devDir +
        " (found: gpiochip0 [raspberrypi-exp-gpio], gpiochip1 [pinctrl-bcm2711])",
    );
    expect(() => findLine(k, { ...PI4_BUTTON, line: "GPIO99" }, k.devDir)).toThrow(
      "has no line named GPIO99",
    );
    const busy = new FakeGpioKernel([
      { label: "pinctrl-bcm2711", lines: ["GPIO0", "GPIO17"], used: { 1: "gpio-keys" } },
    ]);
    expect(() => ChardevButton.open(busy, PI4_BUTTON, { devDir: busy.devDir })).toThrow(
      'in use by "gpio-keys"',
    );
    // Typed: callers match the fault, never the words.
    const faultOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof GpioLineError ? e.fault : "untyped";
      }
      return "no error";
    };
    expect(faultOf(() => findLine(k, { ...PI4_BUTTON, chipLabel: "pinctrl-rp1" }, k.devDir))).toBe("no-chip");
    expect(faultOf(() => findLine(k, { ...PI4_BUTTON, line: "GPIO99" }, k.devDir))).toBe("no-line");
    expect(faultOf(() => ChardevButton.open(busy, PI4_BUTTON, { devDir: busy.devDir }))).toBe("line-busy");
    expect(faultOf(() => findLine(k, PI4_BUTTON, join(k.devDir, "missing")))).toBe("no-gpio-dir");
  });

  test("a kernel without debounce (EINVAL) gets a request without it", () => {
    k = pi4Kernel();
    k.rejectDebounce = true;
    ChardevButton.open(k, PI4_BUTTON, { devDir: k.devDir }).close();
    expect(k.requests.map((r) => r.debounceUs)).toEqual([0]);
  });

  test("short press approves, long press denies; presses before the wait are drained", async () => {
    k = pi4Kernel();
    const b = ChardevButton.open(k, PI4_BUTTON, { devDir: k.devDir, pollMs: 2 });
    k.edge("falling", 10);
    k.edge("rising", 3000); // a long press before the wait: would deny if it counted
    const signal = new AbortController().signal;
    const first = b.waitForVerdict(signal);
    k.edge("falling", 1000);
    k.edge("rising", 1200);
    expect(await first).toBe("approve");
    const second = b.waitForVerdict(signal);
    k.edge("falling", 2000);
    k.edge("rising", 1, 3); // another line's event on the same fd is ignored
    k.edge("rising", 4000);
    expect(await second).toBe("deny");
    b.close();
    expect(k.openFds).toBe(0);
  });

  test("abort rejects with the reason; one wait at a time; closed button rejects", async () => {
    k = pi4Kernel();
    const b = ChardevButton.open(k, PI4_BUTTON, { devDir: k.devDir, pollMs: 2 });
    const ac = new AbortController();
    const wait = b.waitForVerdict(ac.signal);
    await expect(b.waitForVerdict(new AbortController().signal)).rejects.toBeInstanceOf(AssertionError);
    ac.abort(new Error("timeout"));
    await expect(wait).rejects.toThrow("timeout");
    b.close();
    await expect(b.waitForVerdict(new AbortController().signal)).rejects.toMatchObject({ fault: "closed" });
  });

  test("openGpioButton uses injected syscalls (chardev backend)", async () => {
    k = pi4Kernel();
    const b = await openGpioButton(PI4_BUTTON, { syscalls: k, devDir: k.devDir });
    expect(b.description).toBe("gpio pinctrl-bcm2711/GPIO17");
    b.close();
  });
});

describe("real libc through bun:ffi", () => {
  test("loads, and a non-GPIO device answers GET_CHIPINFO with ENOTTY", async () => {
    const loaded = await loadFfiSyscalls();
    if (!("sys" in loaded)) throw new Error(loaded.error);
    const dev = mkdtempSync(join(tmpdir(), "qa-ffi-dev-"));
    symlinkSync("/dev/null", join(dev, "gpiochip0"));
    expect(() => findLine(loaded.sys, PI4_BUTTON, dev)).toThrow(
      `no gpio chip labelled pinctrl-bcm2711 in ${dev} (found: gpiochip0 (ENOTTY))`,
    );
    expect(() => loaded.sys.open(join(dev, "missing"))).toThrow("ENOENT");
  });
});

const GPIO_SIM = "/sys/kernel/config/gpio-sim";
const simReason = existsSync(GPIO_SIM)
  ? null
  : `${GPIO_SIM} is absent (kernel without CONFIG_GPIO_SIM/configfs, or module not loaded: modprobe gpio-sim)`;
if (simReason) console.warn(`skipping gpio-sim tests: ${simReason}`);

describe.skipIf(simReason !== null)("real kernel gpio-sim chip", () => {
  test("a simulated press through the kernel approves", async () => {
    const { withGpioSim } = await import("./testing/gpio-sim.ts");
    await withGpioSim("qa-sim", ["GPIO17"], async (sim) => {
      const b = await openGpioButton(
        { chipLabel: "qa-sim", line: "GPIO17", activeLow: true },
        { backend: "chardev" },
      );
      const wait = b.waitForVerdict(new AbortController().signal);
      await sim.pull(0, "pull-down");
      await Bun.sleep(200);
      await sim.pull(0, "pull-up");
      expect(await wait).toBe("approve");
      b.close();
    });
  });
});
