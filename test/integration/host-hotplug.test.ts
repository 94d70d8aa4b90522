/**
 * Hotplug: USB serial devices (a /dev/serial/by-id entry) and USB network interfaces (a
 * /sys/class/net entry with a MAC) are noticed within 2 s, in fake directories. Over a real pty
 * pair (socat) the daemon connects when the by-id link appears, drops the session when it
 * vanishes, matches a renamed entry by USB serial, and relays calls over the serial link.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hasSocat, type PtyPair, ptyPair } from "../../fixtures/pty.ts";
import {
  buildRelay,
  cleanup,
  cli,
  DEVICE,
  makeHost,
  pairToken,
  runRelayAs,
  startAgent,
  startDaemon,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";
import { byIdMatches, Hotplug } from "../../host/daemon/hotplug.ts";
import { lacking } from "../helpers/requires.ts";

let pty: PtyPair | null = null;
setDefaultTimeout(30_000);

afterEach(() => {
  cleanup();
  pty?.close();
  pty = null;
});

/** Hotplug events as a stream the test awaits, each with the time it took since `mark()`. */
function recorder() {
  const events: string[] = [];
  const waiters: { want: string; resolve: () => void }[] = [];
  const push = (e: string) => {
    events.push(e);
    for (const w of waiters.filter((w) => w.want === e)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  return {
    events,
    push,
    /** Resolves when `want` is seen, rejects after 2 s. */
    within2s(want: string): Promise<number> {
      const t0 = performance.now();
      if (events.includes(want)) return Promise.resolve(0);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${want} not seen within 2 s: ${events.join(", ")}`)),
          2000,
        );
        waiters.push({
          want,
          resolve: () => {
            clearTimeout(timer);
            resolve(performance.now() - t0);
          },
        });
      });
    },
  };
}

describe("hotplug polling", () => {
  test("a by-id symlink and a network interface appearing and vanishing are seen within 2 s", async () => {
    const byId = tempDir();
    const net = tempDir();
    mkdirSync(join(net, "lo"));
    writeFileSync(join(net, "lo", "address"), "00:00:00:00:00:00\n");
    const r = recorder();
    const hotplug = new Hotplug(
      { byIdDir: byId, netDir: net },
      {
        serial: (name, present) => r.push(`serial ${name} ${present}`),
        net: (iface, mac, present) => r.push(`net ${iface} ${mac} ${present}`),
      },
    );
    await hotplug.start();
    try {
      const name = "usb-qubes-air_pi-gpg_E6614103-if00";
      symlinkSync("/dev/null", join(byId, name));
      await r.within2s(`serial ${name} true`);
      unlinkSync(join(byId, name));
      await r.within2s(`serial ${name} false`);
      mkdirSync(join(net, "enx02a0b1c2d3e4"));
      writeFileSync(join(net, "enx02a0b1c2d3e4", "address"), "02:A0:B1:C2:D3:E4\n");
      await r.within2s("net enx02a0b1c2d3e4 02:a0:b1:c2:d3:e4 true");
      rmSync(join(net, "enx02a0b1c2d3e4"), { recursive: true });
      await r.within2s("net enx02a0b1c2d3e4 02:a0:b1:c2:d3:e4 false");
      // what was there at start is the baseline, not an event
      expect(r.events.some((e) => e.startsWith("net lo"))).toBe(false);
    } finally {
      hotplug.stop();
    }
  });

  test("by-id names match by exact name or by the USB serial as a whole field, never by index", () => {
    const name = "usb-qubes-air_pi-gpg_ABC123-if00";
    expect(byIdMatches(name, name, undefined)).toBe(true);
    expect(byIdMatches("usb-qubes-air_pi-gpg_ABC123-if02", name, undefined)).toBe(false);
    expect(byIdMatches("usb-other_board_ABC123-if02", null, "ABC123")).toBe(true);
    expect(byIdMatches("usb-Prolific_USB-Serial_ABC123", null, "ABC123")).toBe(true);
    expect(byIdMatches("usb-qubes-air_pi-gpg_ABC1234-if00", null, "ABC123")).toBe(false);
    expect(byIdMatches("usb-qubes-air_XABC123-if00", null, "ABC123")).toBe(false);
  });

  test("a network interface with the remote's MAC makes the daemon retry TCP at once", async () => {
    const agent = await startAgent();
    const token = await pairToken(agent);
    const net = tempDir();
    const host = makeHost();
    const daemon = await startDaemon(host, [
      "--net-dir",
      net,
      "--backoff-min-ms",
      "60000",
      "--backoff-max-ms",
      "60000",
    ]);
    const mac = "02:a0:b1:c2:d3:e4";
    const paired = await cli(host, [
      "pair",
      DEVICE,
      "--tcp",
      `127.0.0.1:${agent.port}`,
      "--token",
      token,
      "--mac",
      mac,
    ]);
    expect(paired.code).toBe(0);
    await daemon.waitLine(/pi-gpg: up/);
    agent.proc.kill("SIGKILL");
    await daemon.waitLine(/pi-gpg: down: /); // ...and now it waits a minute before trying again
    await startAgent({ dir: agent.dir, tcp: `127.0.0.1:${agent.port}` });
    mkdirSync(join(net, "enx02a0b1c2d3e4"));
    writeFileSync(join(net, "enx02a0b1c2d3e4", "address"), `${mac}\n`);
    await daemon.waitLine(/pi-gpg: network interface enx02a0b1c2d3e4 appeared/, 2000);
    await daemon.waitLine(/pi-gpg: up/, 2000);
  }, 20_000);
});

describe.skipIf(lacking(hasSocat() ? null : "socat"))("a USB serial remote over a pty pair", () => {
  test("connects when its by-id entry appears, drops when it vanishes, matches by USB serial, relays calls", async () => {
    pty = await ptyPair();
    const agent = await startAgent({ tty: pty.a });
    const token = await pairToken(agent);
    const byId = tempDir();
    const host = makeHost();
    const [relay, daemon] = await Promise.all([
      buildRelay(),
      startDaemon(host, ["--serial-by-id-dir", byId]),
    ]);
    const name = "usb-qubes-air_pi-gpg_ABC123-if00";
    const absent = await cli(host, [
      "pair",
      DEVICE,
      "--serial",
      name,
      "--token",
      token,
      "--usb-serial",
      "ABC123",
    ]);
    expect([absent.code, absent.stderr]).toEqual([1, expect.stringContaining("not present")]);
    symlinkSync(pty.b, join(byId, name));
    const paired = await cli(host, [
      "pair",
      DEVICE,
      "--serial",
      name,
      "--token",
      token,
      "--usb-serial",
      "ABC123",
    ]);
    expect(paired.code).toBe(0);
    await daemon.waitLine(/pi-gpg: up/);
    const echo = await runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: "over serial\n" });
    expect([echo.code, echo.stdout]).toEqual([0, "over serial\n"]);
    expect((await cli(host, ["list"])).stdout).toMatch(
      /pi-gpg\s+usb\s+serial usb-qubes-air_pi-gpg_ABC123-if00\s+up\s+\d/,
    );

    unlinkSync(join(byId, name)); // unplugged
    await daemon.waitLine(/pi-gpg: serial device usb-qubes-air_pi-gpg_ABC123-if00 vanished/, 2000);
    await daemon.waitLine(/pi-gpg: down: absent/, 2000);
    const down = await runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+` });
    expect([down.code, down.stderr]).toEqual([125, "qubes-air: pi-gpg is not connected (down: absent)\n"]);

    // plugged in again, enumerated under another name that holds the same USB serial
    symlinkSync(pty.b, join(byId, "usb-qubes-air_pi-gpg_rev2_ABC123-if00"));
    await daemon.waitLine(/pi-gpg: serial device usb-qubes-air_pi-gpg_rev2_ABC123-if00 appeared/, 2000);
    await daemon.waitLine(/pi-gpg: up/, 2000);
    const big = new Uint8Array(1 << 20).map((_, i) => i * 7);
    const [again, status] = await Promise.all([
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: big }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Exit+3` }),
    ]);
    expect(again.code).toBe(0);
    expect(Buffer.compare(Buffer.from(again.bytes), Buffer.from(big))).toBe(0);
    expect([status.code, status.stdout]).toEqual([3, "stdout line\n"]);
  }, 30_000);
});
