/**
 * Desktop notifications: found only where there is a GUI, run as a real process (a fake
 * notify-send on PATH records its arguments: the stand-in for the desktop), never failing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { platform } from "../../platform/index.ts";
import { desktopNotifier, findNotifier, NOTIFY_IN_FLIGHT } from "./notify.ts";

const dir = mkdtempSync(join(tmpdir(), "qa-notify-"));
const record = join(dir, "args");
const fake = join(dir, "notify-send");
writeFileSync(
  fake,
  `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >> '${record}'\necho END >> '${record}'\n`,
);
chmodSync(fake, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function waitFor(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await Bun.sleep(20);
  }
}

describe("notifications", () => {
  test("a GUI is a display in the environment and notify-send on PATH; else nothing", async () => {
    const noX = join(dir, "no-X0");
    expect(await findNotifier({ DISPLAY: ":0", PATH: `/nonexistent:${dir}` }, undefined, noX)).toEqual({
      program: fake,
      display: {},
    });
    expect((await findNotifier({ WAYLAND_DISPLAY: "wayland-0", PATH: dir }, undefined, noX))?.program).toBe(
      fake,
    );
    expect(await findNotifier({ PATH: dir }, undefined, noX)).toBeNull();
    expect(await findNotifier({ DISPLAY: ":0", PATH: "/nonexistent" }, undefined, noX)).toBeNull();
    expect(await findNotifier({ DISPLAY: ":0", PATH: "relative" }, undefined, noX)).toBeNull();
  });

  test("a systemd user unit without DISPLAY: the X server's socket of :0 counts, with DISPLAY=:0", async () => {
    const x0 = join(dir, "X0");
    const server = await platform.unixListen(x0, (s) => s.close());
    try {
      expect(await findNotifier({ PATH: dir }, undefined, x0)).toEqual({
        program: fake,
        display: { DISPLAY: ":0" },
      });
    } finally {
      await server.close();
    }
  });

  test("notify-send gets the summary and body after --, urgent for a waiting prompt", async () => {
    const logs: string[] = [];
    const notify = desktopNotifier({ program: fake, display: {} }, (m) => logs.push(m));
    notify("pi: waiting for a press [K7QD]", "-work asks for PKSIGN", true);
    await waitFor(() => existsSync(record) && readFileSync(record, "utf8").endsWith("END\n"));
    expect(readFileSync(record, "utf8")).toBe(
      "--app-name=qubes-air\n--urgency=critical\n--expire-time=0\n--\npi: waiting for a press [K7QD]\n-work asks for PKSIGN\nEND\n",
    );
    expect(logs).toEqual([]);
  });

  test("a notify-send that fails or is missing is said once, never thrown; a flood is dropped", async () => {
    const logs: string[] = [];
    const missing = desktopNotifier({ program: join(dir, "gone"), display: {} }, (m) => logs.push(m));
    missing("a", "b", false);
    missing("a", "b", false);
    await waitFor(() => logs.length >= 1);
    expect(logs[0]).toContain("cannot start notify-send");
    const flooded: string[] = [];
    const n = desktopNotifier({ program: "/bin/sleep", display: {} }, (m) => flooded.push(m));
    for (let i = 0; i < NOTIFY_IN_FLIGHT + 3; i++) n("1", "x", false);
    expect(flooded.some((l) => l.includes("dropped"))).toBe(true);
    expect(desktopNotifier(null, () => {})).toBeInstanceOf(Function);
  });
});
