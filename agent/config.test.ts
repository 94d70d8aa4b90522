import { describe, expect, test } from "bun:test";
import { ConfigError } from "../core/errors.ts";
import { FILECOPY_LIMITS } from "../core/qrexec/services.ts";
import { KEY_LOCK_DEFAULTS, parseConfig } from "./config.ts";

const BASE = { name: "pi-gpg", listen: { tcp: "127.0.0.1:7441" }, stateDir: "/var/lib/qa" };
const parse = (extra: Record<string, unknown>) => parseConfig({ ...BASE, ...extra }, "agent.json", {});

describe('config "fileCopy"', () => {
  test("defaults to FILECOPY_LIMITS; each key can be set alone", () => {
    expect(parse({}).fileCopy).toEqual(FILECOPY_LIMITS);
    expect(parse({ fileCopy: { maxBytes: 5000 } }).fileCopy).toEqual({ ...FILECOPY_LIMITS, maxBytes: 5000 });
    expect(parse({ fileCopy: { reserveBytes: 0, reservePercent: 10 } }).fileCopy).toMatchObject({
      reserveBytes: 0,
      reservePercent: 10,
    });
  });

  test("unknown keys and bad values are ConfigErrors naming the key", () => {
    for (const [v, re] of [
      [{ maxbytes: 1 }, /unknown key "fileCopy.maxbytes"/],
      [{ maxBytes: 0 }, /"fileCopy.maxBytes" must be a whole number from 1/],
      [{ maxFiles: 1.5 }, /"fileCopy.maxFiles" must be a whole number/],
      [{ reservePercent: 51 }, /"fileCopy.reservePercent" must be a whole number from 0 to 50/],
      ["big", /"fileCopy" must be an object/],
    ] as const) {
      expect(() => parse({ fileCopy: v })).toThrow(ConfigError);
      expect(() => parse({ fileCopy: v })).toThrow(re);
    }
  });
});

describe('config "keyLock"', () => {
  test("defaults, and values within bounds", () => {
    expect(parse({}).keyLock).toEqual(KEY_LOCK_DEFAULTS);
    expect(parse({ keyLock: { maxAttempts: 10, idleSeconds: 60 } }).keyLock).toEqual({
      ...KEY_LOCK_DEFAULTS,
      maxAttempts: 10,
      idleSeconds: 60,
    });
  });
  test("bad values are refused with the key named", () => {
    for (const [v, re] of [
      [{ maxAttempts: 0 }, /"keyLock.maxAttempts" must be a whole number from 1 to 100/],
      [{ idleSeconds: 0 }, /"keyLock.idleSeconds" must be a whole number from 1/],
      [{ unlockedHome: "run/x" }, /"keyLock.unlockedHome" must be an absolute path/],
      [{ unlockedHome: "/" }, /"keyLock.unlockedHome" must be an absolute path/],
      [{ pin: "1234" }, /unknown key "keyLock.pin"/],
    ] as const) {
      expect(() => parse({ keyLock: v })).toThrow(ConfigError);
      expect(() => parse({ keyLock: v })).toThrow(re);
    }
  });
});

describe('config "display"', () => {
  test("absent: none; auto or a path for the panel; a console path", () => {
    expect(parse({}).display).toBeNull();
    expect(parse({ display: { framebuffer: "auto" } }).display).toEqual({
      framebuffer: "auto",
      console: null,
    });
    expect(parse({ display: { framebuffer: "/dev/fb1", console: "/dev/tty1" } }).display).toEqual({
      framebuffer: "/dev/fb1",
      console: "/dev/tty1",
    });
  });
  test("the link's own tty is refused as the console; bad paths and keys are named", () => {
    const onTty = { listen: { tty: "/dev/ttyGS0" }, display: { console: "/dev/ttyGS0" } };
    expect(() => parse(onTty)).toThrow(/"display.console" is the link's own tty/);
    expect(() => parse({ display: { framebuffer: "fb1" } })).toThrow(
      /"display.framebuffer" must be an absolute path/,
    );
    expect(() => parse({ display: { oled: true } })).toThrow(/unknown key "display.oled"/);
  });
});
