/**
 * The libgpiod-tools fallback: output parsers on recorded v1 and v2 output, the real installed
 * gpiomon's version when there is one, and the whole backend run as real processes against
 * stand-in gpiodetect/gpioinfo/gpiomon scripts placed first in PATH (there is no GPIO chip here).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lacking } from "../test/helpers/requires.ts";
import {
  gpiomonArgv,
  parseGpiodetect,
  parseGpioinfo,
  parseGpiomonLine,
  parseLibgpiodVersion,
  ToolsButton,
} from "./gpio-tools.ts";

const GPIOINFO_V1 = `gpiochip0 - 58 lines:
\tline   0:     "ID_SDA"       unused   input  active-high 
\tline   5:      unnamed       unused   input  active-high 
\tline  17:     "GPIO17"       unused   input  active-high 
`;
const GPIOINFO_V2 = `gpiochip0 - 54 lines:
\tline   0:\t"ID_SDA"        \tinput
\tline  16:\tunnamed         \tinput
\tline  17:\t"GPIO17"        \tinput consumer="qubes-air"
`;

describe("parsers", () => {
  test("version", () => {
    expect(parseLibgpiodVersion("gpiomon (libgpiod) v1.6.3\nCopyright (C) 2017-2018")).toBe(1);
    expect(parseLibgpiodVersion("gpiomon (libgpiod) v2.1.3\n")).toBe(2);
    expect(parseLibgpiodVersion("gpiomon (libgpiod) v3.0")).toBeNull();
    expect(parseLibgpiodVersion("something else")).toBeNull();
  });

  test("gpiodetect and gpioinfo, both versions", () => {
    const detect = "gpiochip0 [pinctrl-bcm2711] (58 lines)\ngpiochip1 [raspberrypi-exp-gpio] (8 lines)\n";
    expect(parseGpiodetect(detect)).toEqual([
      { name: "gpiochip0", label: "pinctrl-bcm2711", lines: 58 },
      { name: "gpiochip1", label: "raspberrypi-exp-gpio", lines: 8 },
    ]);
    expect(parseGpioinfo(GPIOINFO_V1)).toEqual([
      { offset: 0, name: "ID_SDA" },
      { offset: 5, name: null },
      { offset: 17, name: "GPIO17" },
    ]);
    expect(parseGpioinfo(GPIOINFO_V2).map((l) => l.name)).toEqual(["ID_SDA", null, "GPIO17"]);
  });

  test("gpiomon argv and output differ between v1 and v2", () => {
    expect(gpiomonArgv(1, "gpiochip0", 17, true, 10)).toEqual([
      "gpiomon",
      "--bias=pull-up",
      "--line-buffered",
      "--format=%e %s %n",
      "gpiochip0",
      "17",
    ]);
    expect(gpiomonArgv(2, "gpiochip4", 17, true, 10)).toEqual([
      "gpiomon",
      "--chip",
      "gpiochip4",
      "--bias=pull-up",
      "--edges=both",
      "--consumer=qubes-air",
      "--debounce-period=10ms",
      "--format=%e %S",
      "17",
    ]);
    expect(parseGpiomonLine(1, "0 12 5")).toEqual({ edge: "falling", timestampNs: 12_000_000_005n });
    expect(parseGpiomonLine(1, "1 12 500000000")).toEqual({ edge: "rising", timestampNs: 12_500_000_000n });
    expect(parseGpiomonLine(2, "2 12.000000005")).toEqual({ edge: "falling", timestampNs: 12_000_000_005n });
    expect(parseGpiomonLine(2, "1 13.100000000")).toEqual({ edge: "rising", timestampNs: 13_100_000_000n });
    for (const bad of ["", "2 12 5", "1 x.1", "0 12.000000001", "1 12.1", "Monitoring line"]) {
      expect(parseGpiomonLine(2, bad)).toBeNull();
    }
    expect(parseGpiomonLine(1, "2 12 5")).toBeNull();
  });

  test.skipIf(lacking(Bun.which("gpiomon") ? null : "gpiomon (package gpiod)"))(
    "the installed gpiomon's version is recognised",
    () => {
      const out = Bun.spawnSync(["gpiomon", "--version"]).stdout.toString();
      expect(parseLibgpiodVersion(out)).not.toBeNull();
    },
  );
});

/** Stand-in tools: gpiomon logs its argv, then prints `events` and waits. */
function fakeTools(version: 1 | 2, events: string[]): { dir: string; argvLog: string } {
  const dir = mkdtempSync(join(tmpdir(), "qa-fake-gpiod-"));
  const argvLog = join(dir, "argv.log");
  const script = (name: string, body: string) => {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  script(
    "gpiodetect",
    `echo "gpiochip0 [raspberrypi-exp-gpio] (8 lines)"; echo "gpiochip4 [pinctrl-rp1] (54 lines)"`,
  );
  script(
    "gpioinfo",
    `[ "$1" = gpiochip4 ] || exit 1; printf '%s' '${version === 1 ? GPIOINFO_V1 : GPIOINFO_V2}'`,
  );
  const lines = events.map((e) => `echo '${e}'`).join("\n");
  script(
    "gpiomon",
    `if [ "$1" = --version ]; then echo "gpiomon (libgpiod) v${version === 1 ? "1.6.3" : "2.1"}"; exit 0; fi
echo "$@" >> '${argvLog}'
sleep 0.05
${lines}
exec sleep 30`,
  );
  return { dir, argvLog };
}

describe("tools backend as real processes", () => {
  const savedPath = process.env.PATH;
  afterAll(() => {
    process.env.PATH = savedPath;
  });
  const line = { chipLabel: "pinctrl-rp1", line: "GPIO17", activeLow: true };

  test("v1: long press denies, with v1 argv", async () => {
    const { dir, argvLog } = fakeTools(1, ["0 100 0", "1 101 600000000"]);
    process.env.PATH = `${dir}:${savedPath}`;
    const b = await ToolsButton.open(line);
    expect(b.description).toBe("gpiomon v1 pinctrl-rp1/GPIO17");
    expect(await b.waitForVerdict(new AbortController().signal)).toBe("deny");
    expect(readFileSync(argvLog, "utf8").trim()).toBe(
      "--bias=pull-up --line-buffered --format=%e %s %n gpiochip4 17",
    );
    b.close();
  });

  test("v2: an orphan release is ignored, a short press approves", async () => {
    const { dir } = fakeTools(2, ["1 99.000000000", "2 100.000000000", "1 100.200000000"]);
    process.env.PATH = `${dir}:${savedPath}`;
    const b = await ToolsButton.open(line);
    expect(await b.waitForVerdict(new AbortController().signal)).toBe("approve");
    b.close();
  });

  test("abort kills gpiomon and rejects; a missing chip is a clear error", async () => {
    const { dir } = fakeTools(2, []);
    process.env.PATH = `${dir}:${savedPath}`;
    const b = await ToolsButton.open(line);
    const ac = new AbortController();
    const wait = b.waitForVerdict(ac.signal);
    setTimeout(() => ac.abort(new Error("confirmation timed out")), 100);
    await expect(wait).rejects.toThrow("confirmation timed out");
    b.close();
    await expect(ToolsButton.open({ ...line, chipLabel: "pinctrl-bcm2711" })).rejects.toThrow(
      "no gpio chip labelled pinctrl-bcm2711 (found: gpiochip0 [raspberrypi-exp-gpio], gpiochip4 [pinctrl-rp1])",
    );
  });
});
