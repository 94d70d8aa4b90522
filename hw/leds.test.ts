/** The LED indicator against a fake /sys/class/leds directory. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BOARDS } from "./boards.ts";
import { LedIndicator, openLedIndicator, parseTrigger } from "./leds.ts";

function fakeLeds(leds: Record<string, { trigger: string; brightness?: string; max?: string }>): string {
  const root = mkdtempSync(join(tmpdir(), "qa-leds-"));
  for (const [name, l] of Object.entries(leds)) {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, "trigger"), l.trigger);
    writeFileSync(join(root, name, "brightness"), l.brightness ?? "0");
    writeFileSync(join(root, name, "max_brightness"), l.max ?? "1");
  }
  return root;
}

const state = (root: string, name: string) => {
  const f = (file: string) => {
    try {
      return readFileSync(join(root, name, file), "utf8");
    } catch {
      return undefined;
    }
  };
  return { trigger: f("trigger"), brightness: f("brightness"), on: f("delay_on"), off: f("delay_off") };
};

describe("LedIndicator", () => {
  test("parseTrigger finds the bracketed trigger", () => {
    expect(parseTrigger("none rc-feedback [mmc0] timer heartbeat\n")).toEqual({
      current: "mmc0",
      available: ["none", "rc-feedback", "mmc0", "timer", "heartbeat"],
    });
    expect(parseTrigger("").current).toBeNull();
  });

  test("waiting blinks slowly, idle restores the original trigger", () => {
    const root = fakeLeds({ ACT: { trigger: "none [mmc0] timer heartbeat" } });
    const led = new LedIndicator("ACT", { root });
    led.show("waiting");
    expect(state(root, "ACT")).toMatchObject({ trigger: "timer", on: "200", off: "800" });
    led.show("idle");
    expect(state(root, "ACT").trigger).toBe("mmc0");
  });

  test("approved is solid at max brightness, denied flickers; both return to idle by themselves", async () => {
    const root = fakeLeds({ LED_BLUE: { trigger: "[none] timer heartbeat", brightness: "0", max: "255" } });
    const led = new LedIndicator("LED_BLUE", { root, flashMs: 30 });
    led.show("approved");
    expect(state(root, "LED_BLUE")).toMatchObject({ trigger: "none", brightness: "255" });
    await Bun.sleep(80);
    expect(state(root, "LED_BLUE")).toMatchObject({ trigger: "none", brightness: "0" });
    led.show("denied");
    expect(state(root, "LED_BLUE")).toMatchObject({ trigger: "timer", on: "60", off: "60" });
    led.show("waiting"); // a new call cancels the pending return to idle
    await Bun.sleep(80);
    expect(state(root, "LED_BLUE")).toMatchObject({ trigger: "timer", on: "200" });
    led.close();
    expect(state(root, "LED_BLUE")).toMatchObject({ trigger: "none", brightness: "0" });
    led.show("waiting"); // after close: nothing
    expect(state(root, "LED_BLUE").trigger).toBe("none");
  });

  test("conflict has its own long-short blink, not the denial's flicker, and returns to idle", () => {
    const root = fakeLeds({ ACT: { trigger: "none [mmc0] timer" } });
    const led = new LedIndicator("ACT", { root });
    led.show("conflict");
    expect(state(root, "ACT")).toMatchObject({ trigger: "timer", on: "600", off: "150" });
    led.close();
    expect(state(root, "ACT").trigger).toBe("mmc0");
  });

  test("a write failure never throws and is reported once", () => {
    const root = fakeLeds({});
    mkdirSync(join(root, "ACT", "trigger"), { recursive: true }); // writes fail with EISDIR, even as root
    const errors: string[] = [];
    const led = new LedIndicator("ACT", { root, onError: (m) => errors.push(m) });
    led.show("waiting");
    led.show("waiting");
    led.close();
    expect(errors).toEqual(["led ACT: cannot write trigger: EISDIR"]);
    expect(() => new LedIndicator("missing", { root }).show("waiting")).not.toThrow();
  });

  test("openLedIndicator picks the first existing name of the profile (ACT, else led0)", () => {
    const old = fakeLeds({ led0: { trigger: "[mmc0]" }, led1: { trigger: "[default-on]" } });
    expect(openLedIndicator(BOARDS.pi4.leds, { root: old }).description).toBe("led led0");
    const armory = fakeLeds({ LED_WHITE: { trigger: "[heartbeat]" }, LED_BLUE: { trigger: "[none]" } });
    expect(openLedIndicator(BOARDS["armory-mk2"].leds, { root: armory }).description).toBe("led LED_BLUE");
    const none = openLedIndicator(BOARDS.pi5.leds, { root: join(tmpdir(), "qa-no-leds") });
    expect(none.description).toStartWith("no LED (none of ACT, led0, PWR, led1 in");
    none.show("waiting");
  });
});
