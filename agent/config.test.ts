import { describe, expect, test } from "bun:test";
import { ConfigError } from "../core/errors.ts";
import { FILECOPY_LIMITS } from "../core/qrexec/services.ts";
import { parseConfig } from "./config.ts";

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
