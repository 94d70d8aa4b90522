/**
 * The real agent process, paired and reconnected by a host side in this test: token pairing
 * (one-time, file deleted), reconnect with IK, replay refusal across an agent restart, unpinned
 * keys, one session per host, the pair-code confirmation and its lock-out after 3 failed
 * attempts (across a restart), a fresh pairing resetting the IK replay state, handshake limits,
 * config errors.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { PairingLockedError } from "../../core/session/handshake.ts";
import { formatPublicKey, generateStaticKeyPair } from "../../core/session/key-text.ts";
import { OFFER_TIMEOUT_MS } from "../../core/wire/limits.ts";
import { cleanup, makeDir, runCli, startAgent, writeAgentFiles } from "../helpers/agent/harness.ts";
import { connectHost, hostCall, nextTimestamp, pairHost } from "../helpers/agent/host-side.ts";

afterEach(cleanup);

const ECHO = "#!/bin/sh\nprintf 'hello from %s\\n' \"$QREXEC_REMOTE_DOMAIN\"\n";

describe("agent pairing and reconnect", () => {
  test("token pairing pins the host and deletes the token; IK reconnect works; the token is one-time", async () => {
    const agent = await startAgent({
      services: { "test.Echo": ECHO },
      policy: { "30-test.policy": "test.Echo * @anyvm @anyvm allow\n" },
    });
    const { c, hostKey, token, deviceKey } = await pairHost(agent);
    const state = join(agent.dir, "state");
    expect(existsSync(join(state, "pairing-token"))).toBe(false);
    const hosts = JSON.parse(readFileSync(join(state, "hosts.json"), "utf8"));
    expect(hosts.hosts.map((h: { key: string }) => h.key)).toEqual([formatPublicKey(hostKey.publicKey)]);
    expect(readFileSync(join(state, "device.key"), "utf8")).toContain(formatPublicKey(deviceKey));
    expect((await hostCall(c, { service: "test.Echo" })).stdout).toEqual(
      new TextEncoder().encode("hello from work\n"),
    );
    c.session.close();
    await agent.waitLine(/session-down/);

    const again = await connectHost(agent.port, { mode: "reconnect", hostKey, deviceKey });
    await agent.waitLine(/session-up .*mode=reconnect/);
    expect((await hostCall(again, { service: "test.Echo" })).status).toBe(0);

    const thief = connectHost(agent.port, { mode: "pair-psk", hostKey: generateStaticKeyPair(), token });
    await expect(thief).rejects.toThrow();
    await agent.waitLine(/refused .*code=handshake-psk/);
  });

  test("a replayed IK message 1 is refused, also after the agent restarted", async () => {
    const agent = await startAgent();
    const { c, hostKey, deviceKey } = await pairHost(agent);
    c.session.close();
    const ts = nextTimestamp();
    const first = await connectHost(agent.port, {
      mode: "reconnect",
      hostKey,
      deviceKey,
      timestamp: () => ts,
    });
    first.session.close();
    await agent.waitLine(/session-down/);
    agent.proc.kill("SIGTERM");
    expect(await agent.exited).toBe(0);

    const restarted = await startAgent({ dir: agent.dir });
    await expect(
      connectHost(restarted.port, { mode: "reconnect", hostKey, deviceKey, timestamp: () => ts }),
    ).rejects.toThrow();
    await restarted.waitLine(/refused .*code=handshake-replay/);
    const later = await connectHost(restarted.port, {
      mode: "reconnect",
      hostKey,
      deviceKey,
      timestamp: () => ts + 1n,
    });
    expect(later.session.isOpen).toBe(true);
  });

  test("an unpinned host key is refused", async () => {
    const agent = await startAgent();
    const { c, deviceKey } = await pairHost(agent);
    c.session.close();
    await expect(
      connectHost(agent.port, { mode: "reconnect", hostKey: generateStaticKeyPair(), deviceKey }),
    ).rejects.toThrow();
    await agent.waitLine(/refused .*code=handshake-unknown-key/);
  });

  test("a new session from the same host replaces the old one", async () => {
    const agent = await startAgent();
    const { c, hostKey, deviceKey } = await pairHost(agent);
    const second = await connectHost(agent.port, { mode: "reconnect", hostKey, deviceKey });
    await agent.waitLine(/session-replaced/);
    expect(await c.session.closed).toBeNull();
    expect(second.session.isOpen).toBe(true);
  });

  test("pair-code: the agent shows the same code, asks its confirmer, and pins only when approved", async () => {
    const dir = makeDir();
    const record = join(dir, "confirm.env");
    const approve = ["/bin/sh", "-c", `env | grep QUBES_AIR_CONFIRM_ > ${record}; exit 0`];
    const agent = await startAgent({
      dir,
      config: { allowCodePairing: true, confirm: { kind: "command", argv: approve } },
    });
    const c = await connectHost(agent.port, { mode: "pair-code", hostKey: generateStaticKeyPair() });
    await c.session.confirmPairing(true);
    const shown = await agent.waitLine(/pairing-code code=(\d{6})/);
    expect(shown[1]).toBe(c.established.pairingCode!);
    await agent.waitLine(/session-up .*mode=pair-code/);
    expect(readFileSync(record, "utf8")).toContain(`QUBES_AIR_CONFIRM_CODE=${c.established.pairingCode}`);

    const denying = await startAgent({ config: { allowCodePairing: true } });
    const refused = await connectHost(denying.port, { mode: "pair-code", hostKey: generateStaticKeyPair() });
    await expect(refused.session.confirmPairing(true)).rejects.toThrow();
    await denying.waitLine(/refused .*mode=pair-code/);
    expect(existsSync(join(denying.dir, "state", "hosts.json"))).toBe(false);
  });
});

describe("code pairing attempts", () => {
  const LOCKED = /code pairing locked for 15 minutes after 3 failed attempts/;

  test("three refused codes lock code pairing for 15 minutes, also across a restart; then the right code pairs", async () => {
    const agent = await startAgent({ config: { allowCodePairing: true } }); // the default confirmer denies
    for (let i = 1; i <= 3; i++) {
      const c = await connectHost(agent.port, { mode: "pair-code", hostKey: generateStaticKeyPair() });
      await agent.waitLine(new RegExp(`pairing-code code=${c.established.pairingCode} .*attempt=${i}/3`));
      await expect(c.session.confirmPairing(true)).rejects.toThrow();
      await agent.waitLine(/refused .*mode=pair-code/);
    }
    await agent.waitLine(
      /pairing-locked .*minutes=15 why="code pairing locked for 15 minutes after 3 failed attempts"/,
    );
    const refused = await connectHost(agent.port, {
      mode: "pair-code",
      hostKey: generateStaticKeyPair(),
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PairingLockedError);
    expect((refused as PairingLockedError).minutes).toBe(15);
    expect((await agent.waitLine(/refused .*code=pairing-locked why="([^"]*)"/))[1]).toMatch(LOCKED);

    // A restart does not reset it, even with a confirmer that would approve.
    agent.proc.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
    const record = join(agent.dir, "confirm.env");
    const approve = ["/bin/sh", "-c", `env | grep QUBES_AIR_CONFIRM_ > ${record}; exit 0`];
    const config = { allowCodePairing: true, confirm: { kind: "command", argv: approve } };
    const restarted = await startAgent({ dir: agent.dir, config });
    const still = await connectHost(restarted.port, {
      mode: "pair-code",
      hostKey: generateStaticKeyPair(),
    }).catch((e: unknown) => e);
    expect(still).toBeInstanceOf(PairingLockedError);
    await restarted.waitLine(/refused .*code=pairing-locked/);

    // The lock period passes (its recorded end moved into the past while the agent is stopped).
    restarted.proc.kill("SIGTERM");
    expect(await restarted.exited).toBe(0);
    const lockFile = join(agent.dir, "state", "code-pairing.json");
    const lock = JSON.parse(readFileSync(lockFile, "utf8"));
    expect(lock.failures).toBe(3);
    expect(Date.parse(lock.lockedUntil)).toBeGreaterThan(Date.now() + 14 * 60_000);
    writeFileSync(
      lockFile,
      JSON.stringify({ ...lock, lockedUntil: new Date(Date.now() - 1000).toISOString() }),
    );
    const later = await startAgent({ dir: agent.dir, config });
    const hostKey = generateStaticKeyPair();
    const c = await connectHost(later.port, { mode: "pair-code", hostKey });
    await c.session.confirmPairing(true);
    await later.waitLine(/session-up .*mode=pair-code/);
    const env = readFileSync(record, "utf8");
    expect(env).toContain(`QUBES_AIR_CONFIRM_CODE=${c.established.pairingCode}`);
    expect(env).toContain("attempt 1 of 3; code pairing locks for 15 minutes after 3 failed attempts");
    const hosts = JSON.parse(readFileSync(join(agent.dir, "state", "hosts.json"), "utf8"));
    expect(hosts.hosts.map((h: { key: string }) => h.key)).toEqual([formatPublicKey(hostKey.publicKey)]);
    expect(JSON.parse(readFileSync(lockFile, "utf8"))).toMatchObject({ failures: 0, lockedUntil: null });
  }, 60_000);

  test("a host that abandons the pairing after the device's reveal spends an attempt", async () => {
    // The device's user approves every code: only the host walking away fails these attempts.
    const approve = { kind: "command", argv: ["/bin/sh", "-c", "exit 0"] };
    const agent = await startAgent({ config: { allowCodePairing: true, confirm: approve } });
    for (let i = 1; i <= 3; i++) {
      const c = await connectHost(agent.port, { mode: "pair-code", hostKey: generateStaticKeyPair() });
      await agent.waitLine(new RegExp(`pairing-code .*attempt=${i}/3`));
      c.session.close(); // gone without a word about the code
      await agent.waitLine(/refused .*mode=pair-code/);
    }
    const refused = await connectHost(agent.port, {
      mode: "pair-code",
      hostKey: generateStaticKeyPair(),
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PairingLockedError);
  }, 60_000);

  test("a fresh pairing resets the device's IK replay state for that host (a host whose clock went back recovers)", async () => {
    const agent = await startAgent();
    const { c, hostKey, deviceKey } = await pairHost(agent);
    c.session.close();
    const future = nextTimestamp() + 3_600_000_000n; // an hour ahead: the host's clock was wrong
    const ahead = await connectHost(agent.port, {
      mode: "reconnect",
      hostKey,
      deviceKey,
      timestamp: () => future,
    });
    ahead.session.close();
    await agent.waitLine(/session-down/);
    // The host lost its timestamp file and its clock is right again: every reconnect is "old".
    await expect(connectHost(agent.port, { mode: "reconnect", hostKey, deviceKey })).rejects.toThrow();
    await agent.waitLine(/refused .*code=handshake-replay/);
    // Unpair and pair again (a new token, the same host key): the replay state starts over.
    const r = await runCli(["pair-token", "--config", agent.configPath]);
    const token = Uint8Array.from(Buffer.from(r.stdout.trim(), "hex"));
    const again = await connectHost(agent.port, { mode: "pair-psk", hostKey, token });
    await agent.waitLine(/paired .*mode=pair-psk/);
    again.session.close();
    const hosts = JSON.parse(readFileSync(join(agent.dir, "state", "hosts.json"), "utf8"));
    expect(hosts.hosts).toHaveLength(1);
    expect(hosts.hosts[0].lastTimestamp).toBeNull();
    const back = await connectHost(agent.port, { mode: "reconnect", hostKey, deviceKey });
    expect(back.session.isOpen).toBe(true);
    await agent.waitLine(/session-up .*mode=reconnect/);
  });
});

describe("agent handshake limits", () => {
  const rawConnect = (port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => resolve(s));
      s.once("error", reject);
    });
  const closedByPeer = (s: net.Socket) => new Promise<void>((r) => s.once("close", () => r()));

  test("one address holds two half-open handshakes: a third evicts the oldest; no offer in 2 s is closed", async () => {
    const agent = await startAgent();
    const first = await rawConnect(agent.port);
    const firstClosed = closedByPeer(first);
    const second = await rawConnect(agent.port);
    const third = await rawConnect(agent.port);
    await firstClosed;
    await agent.waitLine(/refused .*code=handshake-rate/);
    // The other two send nothing: closed at the offer deadline, not the 10 s handshake deadline.
    const t0 = performance.now();
    await Promise.all([closedByPeer(second), closedByPeer(third)]);
    expect(performance.now() - t0).toBeLessThan(OFFER_TIMEOUT_MS + 1000);
    await agent.waitLine(/refused .*code=handshake-timeout/);
    const { c } = await pairHost(agent);
    expect(c.session.isOpen).toBe(true);
  });

  test("one source may not start handshakes more often than handshakeMinIntervalMs", async () => {
    const agent = await startAgent({ config: { handshakeMinIntervalMs: 60_000 } });
    const first = await rawConnect(agent.port);
    const second = await rawConnect(agent.port);
    await closedByPeer(second);
    await agent.waitLine(/refused .*why=too-frequent/);
    first.destroy();
  });
});

describe("agent configuration", () => {
  test("an unknown key, a bad name or a missing listen is a usage error (exit 2) naming the fix", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ colour: "blue" }, /unknown key "colour"/],
      [{ name: "-bad" }, /"name" must be this device's qube name/],
      [{ listen: {} }, /"listen" needs at least one of "tcp" and "tty"/],
      [{ listen: { tcp: "nope" } }, /"listen.tcp" must be "ADDR:PORT"/],
      [
        { confirm: { kind: "command", argv: ["x"] } },
        /"confirm.argv" must start with an absolute program path/,
      ],
    ];
    for (const [config, message] of cases) {
      const { configPath } = writeAgentFiles({ config });
      const r = await runCli(["run", "--config", configPath]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const missing = await runCli(["run", "--config", "/nonexistent/agent.json"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("does not exist");
  });

  test("a policy syntax error stops the start with the file and line (exit 2)", async () => {
    const { configPath } = writeAgentFiles({ policy: { "30-bad.policy": "test.X * @anyvm\n" } });
    const r = await runCli(["run", "--config", configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("30-bad.policy:1");
  });

  test("--help on every command shows usage with examples; --version prints the version", async () => {
    for (const command of ["run", "keygen", "pair-token", "call", "version"]) {
      const r = await runCli([command, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: qubes-air-agent ${command}`);
      expect(r.stdout).toMatch(/Examples?:/);
    }
    expect((await runCli(["--version"])).stdout).toMatch(/^qubes-air-agent \d+\.\d+\.\d+/);
    expect((await runCli(["frobnicate"])).code).toBe(2);
  });

  test("keygen writes a 0600 key and prints its public key; it never overwrites", async () => {
    const out = join(makeDir(), "device.key");
    const r = await runCli(["keygen", "--out", out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^qa-pub:[0-9a-f]{64}\n$/);
    expect(readFileSync(out, "utf8")).toContain(r.stdout.trim());
    const again = await runCli(["keygen", "--out", out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("refusing to overwrite");
  });
});
