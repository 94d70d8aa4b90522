/**
 * Unit test of systemClock (duplex.ts), the one piece of logic in the session's I/O contracts:
 * timers fire after their delay, cancel stops them, and time only moves forward.
 */
import { expect, test } from "bun:test";
import { systemClock } from "./duplex.ts";

test("systemClock: a timer fires after its delay, a cancelled one never does, now() never goes back", async () => {
  const fired: string[] = [];
  const t0 = systemClock.now();
  systemClock.setTimer(5, () => fired.push("kept"));
  const cancel = systemClock.setTimer(5, () => fired.push("cancelled"));
  cancel();
  await Bun.sleep(30);
  expect(fired).toEqual(["kept"]);
  expect(systemClock.now()).toBeGreaterThanOrEqual(t0 + 5);
});
