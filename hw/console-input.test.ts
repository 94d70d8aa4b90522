/** Console confirmation on a real pty pair (socat), and the refusal of host-writable ttys. */
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { hasSocat, ptyPair } from "../fixtures/pty.ts";
import { lacking } from "../test/helpers/requires.ts";
import { ConsoleInput, consoleRefusal, keyVerdict } from "./console-input.ts";

describe("console refusals", () => {
  test("gadget serial, ptys and the link's tty are refused", () => {
    expect(consoleRefusal("/dev/ttyGS0", "/dev/ttyGS0", {})).toContain("USB gadget serial");
    expect(consoleRefusal("/dev/pts/3", "/dev/pts/3", {})).toContain("pseudo-terminal");
    expect(consoleRefusal("/dev/pts/3", "/dev/pts/3", { allowPty: true })).toBeNull();
    expect(consoleRefusal("/dev/ttyAMA0", "/dev/ttyAMA0", { forbidden: ["/dev/ttyAMA0"] })).toContain(
      "link's own",
    );
    expect(consoleRefusal("/dev/tty1", "/dev/tty1", {})).toBeNull();
  });

  test("keys", () => {
    expect([..."yYnNx\r"].map((c) => keyVerdict(c.charCodeAt(0)))).toEqual([
      "approve",
      "approve",
      "deny",
      "deny",
      null,
      null,
    ]);
  });

  test("opening a pty without allowPty fails with the reason", async () => {
    if (!hasSocat()) return;
    const pair = await ptyPair();
    try {
      await expect(ConsoleInput.open({ tty: pair.a })).rejects.toThrow("pseudo-terminal");
    } finally {
      pair.close();
    }
  });
});

describe.skipIf(lacking(hasSocat() ? null : "socat"))("console input on a pty", () => {
  test("a key typed before the wait is ignored; y approves, n denies; prompt is written", async () => {
    const pair = await ptyPair();
    const input = await ConsoleInput.open({ tty: pair.a, allowPty: true, prompt: "PROMPT\n" });
    const other = openSync(pair.b, "r+");
    try {
      writeSync(other, "y");
      await Bun.sleep(100); // let the early key arrive and be dropped
      const first = input.waitForVerdict(new AbortController().signal);
      writeSync(other, "xn");
      expect(await first).toBe("deny");
      const second = input.waitForVerdict(new AbortController().signal);
      writeSync(other, "Y");
      expect(await second).toBe("approve");
      const buf = new Uint8Array(256);
      const n = readSync(other, buf);
      expect(new TextDecoder().decode(buf.subarray(0, n))).toContain("PROMPT");
      const ac = new AbortController();
      const third = input.waitForVerdict(ac.signal);
      ac.abort(new Error("timeout"));
      await expect(third).rejects.toThrow("timeout");
    } finally {
      closeSync(other);
      input.close();
      pair.close();
    }
  });
});
