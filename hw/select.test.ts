/** Picking the confirmation input and indicator from the board profile and configuration. */
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BOARDS } from "./boards.ts";
import { openApprovalInput, openIndicator } from "./select.ts";

test("the Armory's auto input is its console; host-writable ttys are refused", async () => {
  // (A path that does not exist: the test must not touch this machine's real console.)
  await expect(
    openApprovalInput(BOARDS["armory-mk2"], { kind: "auto" }, { consoleTty: "/dev/qa-no-such-tty" }),
  ).rejects.toThrow("confirmation console /dev/qa-no-such-tty: ENOENT");
  await expect(
    openApprovalInput(BOARDS["armory-mk2"], { kind: "console", tty: "/dev/ttyGS0" }),
  ).rejects.toThrow(
    "refusing /dev/ttyGS0 as the confirmation console: /dev/ttyGS0 is a USB gadget serial port: the host writes to it",
  );
  await expect(
    openApprovalInput(BOARDS.generic, { kind: "console", tty: "/dev/null" }, { linkTtys: ["/dev/null"] }),
  ).rejects.toThrow("the link's own serial device");
});

test("gpio on a board without a default button needs chip and line", async () => {
  await expect(openApprovalInput(BOARDS.generic, { kind: "gpio" })).rejects.toThrow("set chipLabel and line");
});

test("simulated socket input and a board without LEDs", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "qa-select-")), "b.sock");
  const input = await openApprovalInput(BOARDS.pi4, { kind: "simulated-socket", path });
  expect(input.description).toBe(`simulated socket ${path}`);
  input.close();
  expect(openIndicator(BOARDS.generic).description).toBe(
    "no LED (none of none configured in /sys/class/leds)",
  );
});
