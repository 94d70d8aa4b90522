/**
 * The sys-remote daemon and CLI as processes with the real agent: pairing (token and 6-digit
 * code), the list table, reconnecting by itself when the agent returns, recovery after a daemon
 * restart, unpairing, and usage errors.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  cleanup,
  cli,
  DEVICE,
  makeHost,
  pairedHost,
  startAgent,
  startDaemon,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";

setDefaultTimeout(30_000);

afterEach(cleanup);

describe("pairing and list", () => {
  test("pair with a token: list shows the link up with RTT and agent version; the key is pinned 0600", async () => {
    const { agent, host } = await pairedHost();
    const table = await cli(host, ["list"]);
    expect(table.code).toBe(0);
    const [header, row] = table.stdout.split("\n");
    expect(header).toMatch(/^NAME\s+ZONE\s+TRANSPORT\s+STATE\s+RTT\s+AGENT\s+LAST SEEN$/);
    // The RTT has 2 decimals under 10 ms and none above (list.ts): a busy machine gives either.
    expect(row).toMatch(
      new RegExp(
        `^${DEVICE}\\s+lan\\s+tcp 127\\.0\\.0\\.1:${agent.port}\\s+up\\s+\\d+(\\.\\d\\d)? ms\\s+0\\.1\\.0\\s+now$`,
      ),
    );
    const json = JSON.parse((await cli(host, ["list", "--json"])).stdout);
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ name: DEVICE, zone: "lan", state: "up", agentVersion: "0.1.0" });
    expect(json[0].rttMs).toBeGreaterThan(0);
    expect(Date.parse(json[0].lastSeen)).toBeGreaterThan(Date.now() - 60_000);
    const deviceKey = agent.lines.join("\n").match(/device-key-created publicKey=(qa-pub:[0-9a-f]{64})/)![1];
    const registryPath = join(host.state, "registry.json");
    expect(statSync(registryPath).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(registryPath, "utf8")).remotes[0].agentKey).toBe(deviceKey);
    expect(statSync(join(host.state, "host.key")).mode & 0o777).toBe(0o600);
  });

  test("a used token and a taken name are refused, and nothing is stored", async () => {
    const { agent, host, token } = await pairedHost();
    const taken = await cli(host, ["pair", DEVICE, "--tcp", `127.0.0.1:${agent.port}`, "--token", token]);
    expect([taken.code, taken.stderr]).toEqual([
      1,
      `qubes-air pair: ${DEVICE} is already paired: unpair it first (qubes-air unpair ${DEVICE})\n`,
    ]);
    const reused = await cli(host, ["pair", "second", "--tcp", `127.0.0.1:${agent.port}`, "--token", token]);
    expect(reused.code).toBe(1);
    expect(reused.stderr).toContain("token");
    const names = JSON.parse((await cli(host, ["list", "--json"])).stdout).map(
      (r: { name: string }) => r.name,
    );
    expect(names).toEqual([DEVICE]);
  });

  test("pair with the 6-digit code: the CLI shows the device's code and asks; no means no", async () => {
    const codeFile = join(tempDir(), "codes");
    const agent = await startAgent({ allowCodePairing: true, codeFile });
    const host = makeHost();
    const daemon = await startDaemon(host);
    const yes = await cli(
      host,
      ["pair", DEVICE, "--tcp", `127.0.0.1:${agent.port}`, "--code", "--zone", "cloud"],
      "y\n",
    );
    expect(yes.code).toBe(0);
    const shown = yes.stderr.match(/Pairing code: (\d{3}) (\d{3})\n/)!;
    expect(yes.stderr).toContain("Does the device show the same code? [y/N] ");
    expect(readFileSync(codeFile, "utf8")).toBe(`${shown[1]}${shown[2]}\n`);
    await daemon.waitLine(/pi-gpg: up/);
    const no = await cli(host, ["pair", "other", "--tcp", `127.0.0.1:${agent.port}`, "--code"], "n\n");
    expect(no.code).toBe(1);
    expect(no.stderr).toContain("pairing cancelled");
    const rows = JSON.parse((await cli(host, ["list", "--json"])).stdout);
    expect(rows.map((r: { name: string; zone: string }) => [r.name, r.zone])).toEqual([[DEVICE, "cloud"]]);
  });

  test("unpair forgets the remote, with or without the daemon", async () => {
    const { host, daemon } = await pairedHost();
    expect(await cli(host, ["unpair", DEVICE])).toMatchObject({ code: 0, stdout: `Unpaired ${DEVICE}\n` });
    await daemon.waitLine(/pi-gpg: unpaired/);
    expect((await cli(host, ["list"])).stdout).toContain("(no remote qubes");
    const call = await cli(host, ["call", DEVICE, "test.Echo"], "x");
    expect([call.code, call.stderr]).toEqual([
      126,
      `qubes-air: no remote qube named ${DEVICE} is paired with this qube\nRequest refused\n`,
    ]);
    expect((await cli(host, ["unpair", DEVICE])).code).toBe(1);
    // without a daemon, list and unpair read and write the registry themselves
    const second = await pairedHost();
    second.daemon.proc.kill("SIGTERM");
    expect(await second.daemon.exited).toBe(0);
    expect((await cli(second.host, ["list"])).stdout).toMatch(/pi-gpg .* down: no-daemon/);
    expect((await cli(second.host, ["unpair", DEVICE])).code).toBe(0);
    expect((await cli(second.host, ["list", "--json"])).stdout).toBe("[]\n");
  });
});

describe("the link stays up by itself", () => {
  test("the daemon reconnects when the agent comes back (kill -9 and restart the agent)", async () => {
    const { agent, host, daemon } = await pairedHost();
    agent.proc.kill("SIGKILL");
    await daemon.waitLine(/pi-gpg: down: (link-lost|ECONNRESET)/);
    await daemon.waitLine(/pi-gpg: down: ECONNREFUSED/);
    const again = await startAgent({ dir: agent.dir, tcp: `127.0.0.1:${agent.port}` });
    await daemon.waitLine(/pi-gpg: up/);
    await again.waitLine(/session-up .*mode=reconnect/);
    const call = await cli(host, ["call", DEVICE, "test.Echo"], "back\n");
    expect([call.code, call.stdout]).toEqual([0, "back\n"]);
  });

  test("a restarted daemon recovers the link while the agent keeps running", async () => {
    const { agent, host, daemon } = await pairedHost();
    daemon.proc.kill("SIGKILL");
    await daemon.exited;
    const second = await startDaemon(host);
    await second.waitLine(/pi-gpg: up/);
    await agent.waitLine(/session-up .*mode=reconnect/);
    expect((await cli(host, ["call", DEVICE, "test.Echo"], "ok\n")).stdout).toBe("ok\n");
    // an orderly stop closes the session (the agent sees CLOSE, not a lost link)
    second.proc.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    await agent.waitLine(/session-down .*code=closed/);
  });
});

describe("CLI", () => {
  test("usage errors exit 2 with the usage; --help shows examples; version", async () => {
    const host = makeHost();
    const cases: [string[], RegExp][] = [
      [[], /^Usage: qubes-air COMMAND/],
      [["frobnicate"], /unknown command "frobnicate"/],
      [["pair", "pi-gpg", "--tcp", "h:1"], /give exactly one of --token or --code/],
      [["pair", "pi-gpg", "--tcp", "h:1", "--serial", "x", "--code"], /exactly one of --tcp or --serial/],
      [["pair", "@bad", "--tcp", "h:1", "--code"], /NAME must be a qube name/],
      [["pair", "pi-gpg", "--tcp", "h", "--code"], /--tcp must be HOST:PORT/],
      [["pair", "pi-gpg", "--tcp", "h:1", "--token", "abc"], /--token must be 64 hex digits/],
      [["call", "pi-gpg"], /give QUBE and SERVICE/],
      [["call", "pi-gpg", "bad/svc"], /SERVICE must be/],
      [["list", "--colour"], /Unknown option '--colour'/],
      [["copy-to", "pi-gpg"], /at least one FILE/],
      [
        ["daemon", "--hotplug-interval-ms", "5000"],
        /--hotplug-interval-ms must be an integer from 10 to 500/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await cli(host, args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      if (args.length > 0 && args[0] !== "frobnicate") expect(r.stderr).toContain("Usage: qubes-air");
    }
    for (const command of ["daemon", "pair", "unpair", "list", "call", "copy-to", "copy-from", "version"]) {
      const r = await cli(host, [command, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: qubes-air ${command}`);
      expect(r.stdout).toContain("Examples:");
    }
    expect((await cli(host, ["version"])).stdout).toBe("qubes-air 0.1.0 (source)\n");
    const noDaemon = await cli(host, ["call", DEVICE, "test.Echo"]);
    expect([noDaemon.code, noDaemon.stderr]).toEqual([125, expect.stringContaining("daemon is not running")]);
  });
});
