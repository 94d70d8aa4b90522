/**
 * The host's files: the registry round trip and its refusals (strict fields, names, transports,
 * keys, permissions), the persisted strictly increasing IK timestamp, and where the socket and
 * state live.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import { parsePublicKey } from "../../core/session/key-text.ts";
import { cleanup, tempDir } from "../../fixtures/qubes-stubs/harness.ts";
import {
  formatRegistry,
  loadRegistry,
  parseRegistry,
  parseTcpAddress,
  type Registry,
  saveRegistry,
} from "../../host/daemon/registry.ts";
import { TimestampSource } from "../../host/daemon/timestamps.ts";
import { hostPaths, SYSTEM_SOCKET, socketCandidatesOf, socketPathOf } from "../../host/paths.ts";

afterAll(cleanup);

const KEY_TEXT = `qa-pub:${"ab".repeat(32)}`;
const KEY = parsePublicKey(KEY_TEXT);
const sample: Registry = {
  remotes: [
    {
      name: "pi-gpg",
      zone: "usb",
      transport: { serial: { byId: "usb-qubes-air_pi-gpg_E6614103-if00" } },
      usbSerial: "E6614103",
      agentKey: KEY,
      pairingId: new Uint8Array(16).fill(0xa5),
      pairedAt: "2026-01-02T03:04:05.678Z",
      lastSeen: null,
    },
    {
      name: "build1",
      zone: "cloud",
      transport: { tcp: "[2001:db8::7]:7443" },
      mac: "aa:bb:cc:dd:ee:ff",
      agentKey: KEY,
      pairedAt: "2026-01-02T03:04:05.678Z",
      lastSeen: "2026-02-03T04:05:06.000Z",
    },
    {
      name: "armory",
      zone: "usb",
      transport: { serial: { path: "/dev/ttyACM0" } },
      agentKey: KEY,
      pairedAt: "2026-01-02T03:04:05Z",
      lastSeen: null,
    },
  ],
};

function entry(over: Record<string, unknown>): string {
  return JSON.stringify({ version: 1, remotes: [{ ...sample.remotes[1], agentKey: KEY_TEXT, ...over }] });
}

function refused(text: string): string {
  try {
    parseRegistry(text, "registry.json");
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("accepted");
}

describe("registry", () => {
  test("round trip through the file, written 0600 and atomically", async () => {
    const dir = tempDir();
    const path = join(dir, "registry.json");
    expect((await loadRegistry(path)).remotes).toEqual([]); // no file yet: empty
    await saveRegistry(path, sample);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await loadRegistry(path)).toEqual(sample);
    expect(parseRegistry(formatRegistry(sample), "x")).toEqual(sample);
    expect(readFileSync(path, "utf8")).toContain('"byId": "usb-qubes-air_pi-gpg_E6614103-if00"');
    // The pairing id is hex in the file; a remote paired before pairing ids has none.
    expect(readFileSync(path, "utf8")).toContain(`"pairing": "${"a5".repeat(16)}"`);
    expect((await loadRegistry(path)).remotes[1]).not.toHaveProperty("pairingId");
  });

  test("refuses bad files with messages that name the entry and field", () => {
    expect(refused("{")).toContain("not valid JSON");
    expect(refused(JSON.stringify({ version: 2, remotes: [] }))).toContain('"version" must be 1');
    expect(refused(JSON.stringify({ version: 1, remotes: [], extra: 1 }))).toContain('unknown field "extra"');
    expect(refused(entry({ name: "@default" }))).toContain('"name" must be a qube name');
    expect(refused(entry({ name: "x".repeat(32) }))).toContain('"name" must be a qube name');
    expect(refused(entry({ zone: "Cloud Zone" }))).toContain('("build1"): "zone"');
    expect(refused(entry({ transport: { tcp: "host" } }))).toContain("HOST:PORT");
    expect(refused(entry({ transport: { tcp: "h:70000" } }))).toContain("HOST:PORT");
    expect(refused(entry({ transport: { tcp: "h:1", serial: { byId: "x" } } }))).toContain("exactly one");
    expect(refused(entry({ transport: { serial: { byId: "../ttyS0" } } }))).toContain('"byId"');
    expect(refused(entry({ transport: { serial: { path: "dev/ttyACM0" } } }))).toContain('"path"');
    expect(refused(entry({ agentKey: "qa-pub:1234" }))).toContain("64 hex digits");
    expect(refused(entry({ agentKey: `qa-priv:${"ab".repeat(32)}` }))).toContain("private key");
    expect(refused(entry({ mac: "aa-bb" }))).toContain('"mac"');
    expect(refused(entry({ pairing: "ab".repeat(15) }))).toContain('"pairing"');
    expect(refused(entry({ pairing: "AB".repeat(16) }))).toContain('"pairing"');
    expect(refused(entry({ pairing: 5 }))).toContain('"pairing"');
    expect(refused(entry({ pairedAt: "yesterday" }))).toContain('"pairedAt"');
    expect(refused(entry({ lastSeen: 5 }))).toContain('"lastSeen"');
    expect(refused(entry({ colour: "red" }))).toContain('unknown field "colour"');
    const one = { ...sample.remotes[1], agentKey: KEY_TEXT };
    const twice = JSON.stringify({ version: 1, remotes: [one, one] });
    expect(refused(twice)).toContain('"build1" appears twice');
    // a key is never printed
    expect(refused(entry({ agentKey: `qa-pub:${"zz".repeat(32)}` }))).not.toContain("zz");
  });

  test("refuses a registry others can write (its pinned keys could be replaced)", async () => {
    const path = join(tempDir(), "registry.json");
    await saveRegistry(path, sample);
    chmodSync(path, 0o620);
    await expect(loadRegistry(path)).rejects.toThrow("writable by group or others");
    chmodSync(path, 0o600);
    writeFileSync(path, Buffer.from([0x7b, 0xff, 0x7d]));
    await expect(loadRegistry(path)).rejects.toThrow("not UTF-8");
  });

  test("TCP addresses", () => {
    expect(parseTcpAddress("10.0.0.2:7441")).toEqual({ host: "10.0.0.2", port: 7441 });
    expect(parseTcpAddress("pi.lan:1")).toEqual({ host: "pi.lan", port: 1 });
    expect(parseTcpAddress("[fe80::1]:22")).toEqual({ host: "fe80::1", port: 22 });
    for (const bad of ["pi", "pi:0", "pi:65536", "fe80::1:22", "[pi]:22", "a b:1", ":1"]) {
      expect(parseTcpAddress(bad)).toBeNull();
    }
  });
});

describe("IK timestamps", () => {
  test("strictly increasing, persisted, and never behind a value already on disk", async () => {
    const path = join(tempDir(), "ik-timestamp");
    const a = new TimestampSource(path);
    const values = await Promise.all(Array.from({ length: 50 }, () => a.next()));
    for (let i = 1; i < values.length; i++) expect(values[i]! > values[i - 1]!).toBe(true);
    expect(BigInt(readFileSync(path, "utf8").trim())).toBe(values[49]!);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    // a restarted daemon continues after the last value, even if the clock went back
    const future = BigInt(Date.now() + 3_600_000) * 1000n;
    writeFileSync(path, `${future}\n`);
    expect(await new TimestampSource(path).next()).toBe(future + 1n);
    writeFileSync(path, "garbage");
    await expect(new TimestampSource(path).next()).rejects.toThrow("does not hold a timestamp");
  });
});

describe("paths", () => {
  test("state dir and socket: flag, then environment, then the XDG defaults", () => {
    const env = { HOME: "/home/user", XDG_RUNTIME_DIR: "/run/user/1000" };
    expect(hostPaths(env)).toEqual({
      stateDir: "/home/user/.local/share/qubes-air",
      registry: "/home/user/.local/share/qubes-air/registry.json",
      enrolments: "/home/user/.local/share/qubes-air/enrolments.json",
      hostKey: "/home/user/.local/share/qubes-air/host.key",
      timestamp: "/home/user/.local/share/qubes-air/ik-timestamp",
      socket: "/run/user/1000/qubes-air/daemon.sock",
    });
    expect(hostPaths({ ...env, QUBES_AIR_STATE: "/s", QUBES_AIR_SOCKET: "/x.sock" }).socket).toBe("/x.sock");
    expect(hostPaths(env, { state: "/d", socket: "/y.sock" })).toMatchObject({
      stateDir: "/d",
      socket: "/y.sock",
    });
    // without XDG_RUNTIME_DIR (a qrexec service may lack it): /run/user/<uid> if present, else the state dir
    expect(socketPathOf({}, "/state", undefined, 999_999, "/nonexistent/daemon.sock")).toBe(
      "/state/daemon.sock",
    );
  });

  test("the system unit's daemon socket: tried first by the relay, chosen by the CLI when it exists", () => {
    const dir = mkdtempSync(join(tmpdir(), "qa-syssock-"));
    try {
      const system = join(dir, "daemon.sock");
      const env = { HOME: "/home/user", XDG_RUNTIME_DIR: "/run/user/1000" };
      // The relay imports no node:fs: it connects to each candidate in turn, the system one first.
      expect(socketCandidatesOf(env, "/state", undefined, 1000, system)).toEqual([
        system,
        "/run/user/1000/qubes-air/daemon.sock",
      ]);
      expect(socketCandidatesOf({}, "/state", undefined, 1000, system)).toEqual([
        system,
        "/run/user/1000/qubes-air/daemon.sock",
        "/state/daemon.sock",
      ]);
      // An explicit path (the unit sets QUBES_AIR_SOCKET for its daemon) is the only candidate.
      expect(socketCandidatesOf({ QUBES_AIR_SOCKET: "/x.sock" }, "/s", undefined, 1000, system)).toEqual([
        "/x.sock",
      ]);
      // The CLI: the per-user path while no system daemon runs, the system socket once it exists.
      expect(socketPathOf(env, "/state", undefined, 1000, system)).toBe(
        "/run/user/1000/qubes-air/daemon.sock",
      );
      writeFileSync(system, "");
      expect(socketPathOf(env, "/state", undefined, 1000, system)).toBe(system);
      expect(socketPathOf(env, "/state", "/flag.sock", 1000, system)).toBe("/flag.sock");
      expect(SYSTEM_SOCKET).toBe("/run/qubes-air/daemon.sock");
      const unit = readFileSync(
        join(import.meta.dir, "../../packaging/files/sys-remote/qubes-air.service"),
        "utf8",
      );
      expect(unit).toContain(`Environment=QUBES_AIR_SOCKET=${SYSTEM_SOCKET}`);
      expect(unit).toContain("RuntimeDirectory=qubes-air\n");
      expect(unit).not.toContain("PAMName");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
