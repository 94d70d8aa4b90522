import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import { BOARDS } from "../../hw/boards.ts";
import { parseConfig } from "../config.ts";
import { CommandInput, confirmEnv, DenyInput, managerRequest } from "./confirmer.ts";
import { openConfirmation } from "./inputs.ts";

const BASE = { name: "pi-gpg", listen: { tcp: "127.0.0.1:7441" }, stateDir: "/var/lib/qa" };
const parse = (extra: Record<string, unknown>) => parseConfig({ ...BASE, ...extra }, "agent.json", {});
const fails = (extra: Record<string, unknown>, message: RegExp) => {
  expect(() => parse(extra)).toThrow(ConfigError);
  expect(() => parse(extra)).toThrow(message);
};
const quiet = () => {};

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  delete process.env.QUBES_AIR_SIMULATED_CONFIRM;
});

describe("agent config: confirmation, split-GPG and audit keys", () => {
  test("defaults: deny, 30 s, no window, <stateDir>/gnupg, <stateDir>/audit.log", () => {
    const c = parse({});
    expect(c.confirm).toEqual({ kind: "deny" });
    expect([c.confirmTimeoutSeconds, c.approvalWindowSeconds]).toEqual([30, 0]);
    expect([c.gnupgHome, c.auditLog]).toEqual(["/var/lib/qa/gnupg", "/var/lib/qa/audit.log"]);
    expect(parse({ gnupgHome: "/srv/gnupg" }).gnupgHome).toBe("/srv/gnupg");
  });

  test("every kind parses with its keys", () => {
    expect(parse({ confirm: { kind: "button" } }).confirm).toEqual({ kind: "button", board: null });
    expect(parse({ confirm: { kind: "button", board: "pi4", line: "GPIO27" } }).confirm).toEqual({
      kind: "button",
      board: "pi4",
      line: "GPIO27",
    });
    expect(parse({ confirm: { kind: "console" } }).confirm).toEqual({
      kind: "console",
      tty: "/dev/tty1",
      board: null,
    });
    expect(parse({ confirm: { kind: "hid", vendorId: "1209", productId: "0x0001" } }).confirm).toEqual({
      kind: "hid",
      vendorId: 0x1209,
      productId: 1,
      board: null,
    });
    expect(parse({ confirm: { kind: "hid", path: "/dev/hidraw0" } }).confirm).toMatchObject({
      path: "/dev/hidraw0",
    });
    expect(parse({ confirm: { kind: "socket", path: "/tmp/b.sock" } }).confirm).toEqual({
      kind: "socket",
      path: "/tmp/b.sock",
    });
    expect(parse({ confirm: { kind: "command", argv: ["/bin/true"] } }).confirm).toMatchObject({
      timeoutSeconds: 60,
    });
    expect(parse({ confirmTimeoutSeconds: 120, approvalWindowSeconds: 60 }).approvalWindowSeconds).toBe(60);
  });

  test("mistakes name the key and the fix", () => {
    fails({ confirm: { kind: "buton" } }, /"confirm.kind" must be one of "deny", "command", "button"/);
    fails({ confirm: { kind: "button", board: "pi9" } }, /"confirm.board" must be "auto"/);
    fails({ confirm: { kind: "button", board: "armory-mk2" } }, /the USB armory has no button/);
    fails({ confirm: { kind: "button", pin: 17 } }, /unknown key "confirm.pin"/);
    fails({ confirm: { kind: "console", tty: "tty1" } }, /"confirm.tty" must be an absolute path/);
    fails({ confirm: { kind: "hid" } }, /"confirm.vendorId" must be the USB id/);
    fails({ confirm: { kind: "hid", vendorId: 70000, productId: 1 } }, /"confirm.vendorId"/);
    fails({ confirm: { kind: "socket" } }, /"confirm.path" must be an absolute path/);
    fails(
      { confirmTimeoutSeconds: 121 },
      /"confirmTimeoutSeconds" must be a number of seconds from 1 to 120/,
    );
    fails({ confirmTimeoutSeconds: 0 }, /"confirmTimeoutSeconds"/);
    fails({ approvalWindowSeconds: 61 }, /"approvalWindowSeconds" must be a number of seconds from 0/);
    fails({ gnupgHome: "gnupg" }, /"gnupgHome" must be an absolute path/);
  });
});

describe("opening the confirmation input", () => {
  test('"socket" is refused without QUBES_AIR_SIMULATED_CONFIRM=1, and opens a socket button with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), "qa-conf-"));
    dirs.push(dir);
    const config = parse({ confirm: { kind: "socket", path: join(dir, "b.sock") } });
    await expect(openConfirmation(config, quiet)).rejects.toThrow(/tests and demos only/);
    process.env.QUBES_AIR_SIMULATED_CONFIRM = "1";
    const { input } = await openConfirmation(config, quiet);
    expect(input.description).toBe(`simulated socket ${join(dir, "b.sock")}`);
    input.close();
  });

  test("a button that cannot be opened: the agent starts, logs why, and every wait fails (deny)", async () => {
    const events: string[] = [];
    const config = parse({
      confirm: { kind: "button", board: "pi5", line: "GPIO17", chipLabel: "no-such-chip" },
    });
    const { input, indicator } = await openConfirmation(config, (e) => events.push(e), {
      ledsRoot: "/nonexistent",
    });
    expect(events).toContain("confirm-unavailable");
    expect(input.description).toBe("unavailable");
    expect(indicator.description).toContain("no LED");
    const req = managerRequest({ kind: "call", source: "work", service: "x.Y", arg: "" });
    await expect(input.waitForVerdict(new AbortController().signal, req)).rejects.toThrow();
    input.close();
  });

  test("a button kind on a board without a button never falls back to a console", async () => {
    expect(BOARDS["armory-mk2"].buttons).toHaveLength(0);
    const { input } = await openConfirmation(parse({ confirm: { kind: "button", board: "generic" } }), quiet);
    await expect(
      input.waitForVerdict(
        new AbortController().signal,
        managerRequest({ kind: "call", source: "w", service: "a.B", arg: "" }),
      ),
    ).rejects.toThrow(/has no default button/);
  });
});

describe("the agent-side inputs", () => {
  test("deny refuses at once", async () => {
    expect(await new DenyInput().waitForVerdict()).toBe("deny");
  });

  test("command: exit 0 approves, other exits deny, the abort kills it; env per kind", async () => {
    const req = managerRequest({ kind: "call", source: "work", service: "my.Svc", arg: "a" });
    expect(
      await new CommandInput(
        ["/bin/sh", "-c", 'test "$QUBES_AIR_CONFIRM_SOURCE" = work'],
        5000,
      ).waitForVerdict(new AbortController().signal, req),
    ).toBe("approve");
    expect(
      await new CommandInput(["/bin/false"], 5000).waitForVerdict(new AbortController().signal, req),
    ).toBe("deny");
    const ac = new AbortController();
    const slow = new CommandInput(["/bin/sleep", "30"], 60_000).waitForVerdict(ac.signal, req);
    ac.abort(new Error("timed out"));
    await expect(slow).rejects.toThrow("timed out");
    const gpg = confirmEnv({ client: "work", service: "qubes.Gpg2", operation: "PKSIGN", key: "K [F]" });
    expect(gpg).toMatchObject({
      QUBES_AIR_CONFIRM_KIND: "gpg",
      QUBES_AIR_CONFIRM_OPERATION: "PKSIGN",
      QUBES_AIR_CONFIRM_KEY: "K [F]",
    });
    const pairing = confirmEnv(
      managerRequest({ kind: "pairing", code: "123456", peerKey: `qa-pub:${"ab".repeat(32)}` }),
    );
    expect(pairing).toMatchObject({ QUBES_AIR_CONFIRM_KIND: "pairing", QUBES_AIR_CONFIRM_CODE: "123456" });
    expect(confirmEnv(req)).toMatchObject({
      QUBES_AIR_CONFIRM_KIND: "call",
      QUBES_AIR_CONFIRM_ARGUMENT: "a",
    });
  });
});
