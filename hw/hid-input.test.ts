/** HID key confirmation: report parsing, key-down logic, and the missing-node-hid message. */
import { describe, expect, test } from "bun:test";
import { HID_KEY, HidInput, keysInReport, loadNodeHid, newKeys } from "./hid-input.ts";

const report = (...keys: number[]) => new Uint8Array([0, 0, ...keys, 0, 0, 0, 0, 0, 0].slice(0, 8));

class FakeDevice {
  data: ((d: Uint8Array) => void) | undefined;
  closed = false;
  on(event: string, cb: (x: never) => void) {
    if (event === "data") this.data = cb as (d: Uint8Array) => void;
  }
  close() {
    this.closed = true;
  }
}

describe("reports", () => {
  test("keysInReport and newKeys", () => {
    expect(keysInReport(report(HID_KEY.y, HID_KEY.n))).toEqual([0x1c, 0x11]);
    expect(keysInReport(new Uint8Array([1, 0, 0, 0x1c, 0, 0, 0, 0, 0]), true)).toEqual([0x1c]);
    expect(keysInReport(report(1, 1, 1, 1, 1, 1))).toEqual([]); // rollover error
    expect(newKeys([0x1c], [0x1c, 0x11])).toEqual([0x11]);
  });
});

describe("HidInput", () => {
  test("key-down while waiting counts; held keys and keys before the wait do not", async () => {
    const dev = new FakeDevice();
    const input = await HidInput.open({ vendorId: 0x1234, productId: 0xabcd }, async () => ({
      // A constructor that returns the fake (a class: biome would turn a function into an arrow).
      HID: class {
        constructor() {
          // biome-ignore lint/correctness/noConstructorReturn: the fake device stands in for the instance
          return dev;
        }
      } as never,
    }));
    expect(input.description).toBe("hid 1234:abcd");
    dev.data!(report(HID_KEY.y)); // before the wait
    const w = input.waitForVerdict(new AbortController().signal);
    dev.data!(report(HID_KEY.y)); // still held: not a new press
    dev.data!(report());
    dev.data!(report(HID_KEY.n));
    expect(await w).toBe("deny");
    const w2 = input.waitForVerdict(new AbortController().signal);
    dev.data!(report(HID_KEY.n, HID_KEY.y));
    expect(await w2).toBe("approve");
    input.close();
    expect(dev.closed).toBe(true);
  });

  test("without node-hid, a clear message says how to install it", async () => {
    await expect(loadNodeHid("node-hid-not-installed-here")).rejects.toThrow(
      "USB HID confirmation needs the node-hid package (npm install node-hid@3.4.0",
    );
  });
});
