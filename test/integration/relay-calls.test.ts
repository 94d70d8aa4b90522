/**
 * The RemoteVM relay run exactly as qrexec-agent runs /etc/qubes-rpc/qubesair.NoiseProxy for a
 * Qubes 4.3 RemoteVM call (argv[1] = QREXEC_SERVICE_ARGUMENT = <RemoteVM>+<service>+<arg>,
 * QREXEC_REMOTE_DOMAIN = caller, stdin/stdout = the caller's, exit status = the caller's), with
 * the compiled relay, the qubesdb-read stub on PATH, the real host daemon and the real agent
 * over TCP loopback.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  buildRelay,
  cleanup,
  DEVICE,
  type Host,
  type Logged,
  pairedHost,
  runRelayAs,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";

setDefaultTimeout(30_000);

let relay: string;
let host: Host;
let daemon: Logged;

beforeAll(async () => {
  [relay, { host, daemon }] = await Promise.all([buildRelay(), pairedHost()]);
}, 60_000);
afterAll(cleanup);

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("relay: a RemoteVM call end to end", () => {
  test("exit codes 0, 1, 125 (from the service), 126 (device policy) and 127 arrive intact, with stderr", async () => {
    const [ok, one, problem, denied, missing] = await Promise.all([
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Exit+0` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Exit+1` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Exit+125` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Denied+` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Missing+` }),
    ]);
    expect([ok.code, ok.stdout, ok.stderr]).toEqual([0, "stdout line\n", "stderr line\n"]);
    expect([one.code, one.stdout, one.stderr]).toEqual([1, "stdout line\n", "stderr line\n"]);
    expect([problem.code, problem.stderr]).toEqual([125, "stderr line\n"]);
    expect([denied.code, denied.stdout]).toEqual([126, ""]);
    expect(missing.code).toBe(127);
  });

  test("the caller and the argument reach the device (trailing + = empty argument)", async () => {
    const [withArg, trailing, bare, personal] = await Promise.all([
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Source+abc.1` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Source+` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Source` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Source+`, caller: "personal" }),
    ]);
    expect(withArg.stdout).toBe("source=work arg=abc.1\n");
    expect(trailing.stdout).toBe("source=work arg=\n");
    expect(bare.stdout).toBe("source=work arg=\n");
    expect(personal.stdout).toBe("source=personal arg=\n");
  });

  test("64 MiB through a call arrive byte-identical", async () => {
    const data = randomBytes(64 * 1024 * 1024);
    const r = await runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: data });
    expect(r.code).toBe(0);
    expect(r.bytes.length).toBe(data.length);
    expect(sha(r.bytes)).toBe(sha(data));
  }, 60_000);

  test("256 concurrent relay calls all succeed", async () => {
    const results = await Promise.all(
      Array.from({ length: 256 }, (_, i) =>
        runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: `call ${i}\n` }),
      ),
    );
    expect(results.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    expect(results.map((r) => r.stdout)).toEqual(results.map((_, i) => `call ${i}\n`));
  }, 60_000);

  test("the caller's stdout ends when the service's stdout ends, not at its exit", async () => {
    const started = performance.now();
    const proc = Bun.spawn([relay, `${DEVICE}+test.EarlyEof+`], {
      env: {
        ...host.env,
        QREXEC_SERVICE_ARGUMENT: `${DEVICE}+test.EarlyEof+`,
        QREXEC_REMOTE_DOMAIN: "work",
        QUBESDB_STUB: `/remote/${DEVICE}=${DEVICE}`,
      },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "inherit",
    });
    expect(await new Response(proc.stdout).text()).toBe("early\n");
    const eofAt = performance.now() - started;
    expect(await proc.exited).toBe(3);
    const exitAt = performance.now() - started;
    expect(exitAt - eofAt).toBeGreaterThan(500); // the service sleeps 1 s after closing stdout
  });

  test("unknown names, @ keywords and malformed arguments are refused (126) before the daemon is asked", async () => {
    const log = join(tempDir(), "qubesdb.log");
    const env = { QUBESDB_STUB_LOG: log };
    const cases = await Promise.all([
      runRelayAs(relay, host, { argument: "@default+test.Echo+", env }),
      runRelayAs(relay, host, { argument: "@dispvm:x+test.Echo+", env }),
      runRelayAs(relay, host, { argument: "ghost+test.Echo+", env }),
      runRelayAs(relay, host, { argument: DEVICE, env }),
      runRelayAs(relay, host, { argument: `${DEVICE}+`, env }),
      runRelayAs(relay, host, { argument: `${DEVICE}+bad/service+`, env }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+a b`, env }),
      runRelayAs(relay, host, { argument: "a/b+test.Echo+", env }),
    ]);
    for (const r of cases) {
      expect(r.code).toBe(126);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^qubes-air relay: refused: .+\n$/);
    }
    expect(cases[0]!.stderr).toContain("keyword");
    expect(cases[2]!.stderr).toContain("ghost is not a remote qube relayed by this qube");
    // only the well-formed names were looked up in QubesDB
    expect(readFileSync(log, "utf8")).toBe("/remote/ghost\n");
  });

  test("a name QubesDB knows but the daemon has not paired is refused by the daemon (126)", async () => {
    const r = await runRelayAs(relay, host, {
      argument: "other+test.Echo+",
      env: { QUBESDB_STUB: "/remote/other=other" },
    });
    expect([r.code, r.stderr]).toEqual([
      126,
      "qubes-air: no remote qube named other is paired with this qube\n",
    ]);
  });

  test("remote_name: QubesDB maps the RemoteVM to the paired name", async () => {
    const r = await runRelayAs(relay, host, {
      argument: "gpg-vault+test.Echo+",
      env: { QUBESDB_STUB: `/remote/gpg-vault=${DEVICE}` },
      stdin: "mapped\n",
    });
    expect([r.code, r.stdout]).toEqual([0, "mapped\n"]);
  });

  test("a caller without a valid QREXEC_REMOTE_DOMAIN, or argv and environment that differ, are refused", async () => {
    const noCaller = await runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, caller: "" });
    expect([noCaller.code, noCaller.stderr]).toEqual([
      126,
      "qubes-air relay: refused: no valid QREXEC_REMOTE_DOMAIN\n",
    ]);
    const proc = Bun.spawn([relay, `${DEVICE}+test.Echo+`], {
      env: { ...host.env, QREXEC_SERVICE_ARGUMENT: `${DEVICE}+test.Exit+0`, QREXEC_REMOTE_DOMAIN: "work" },
      stdin: "ignore",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(126);
    expect(await new Response(proc.stderr).text()).toContain("differ");
  });

  test("Qubes 4.2: qubesair.Call+<device>+<service> works without a QubesDB entry", async () => {
    const r = await runRelayAs(relay, host, {
      service: "qubesair.Call",
      argument: `${DEVICE}+test.Source+x`,
      env: { QUBESDB_STUB: "" },
    });
    expect([r.code, r.stdout]).toEqual([0, "source=work arg=x\n"]);
  });

  test("no daemon: 125 and one line on stderr", async () => {
    const r = await runRelayAs(relay, host, {
      argument: `${DEVICE}+test.Echo+`,
      env: { QUBES_AIR_SOCKET: join(tempDir(), "none.sock") },
    });
    expect(r.code).toBe(125);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("daemon is not running");
    expect(daemon.lines.join("\n")).not.toContain("Error");
  });
});

describe("relay: the link breaks under a call", () => {
  test("agent killed mid-call: the caller gets 125 within 2 s, with one line on stderr", async () => {
    const own = await pairedHost();
    const argument = `${DEVICE}+test.Hang+`;
    const proc = Bun.spawn([relay, argument], {
      env: {
        ...own.host.env,
        QREXEC_SERVICE_ARGUMENT: argument,
        QREXEC_REMOTE_DOMAIN: "work",
        QUBESDB_STUB: `/remote/${DEVICE}=${DEVICE}`,
      },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = proc.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("started\n");
    const killedAt = performance.now();
    own.agent.proc.kill("SIGKILL");
    const code = await proc.exited;
    expect(performance.now() - killedAt).toBeLessThan(2000);
    expect(code).toBe(125);
    expect(await new Response(proc.stderr).text()).toBe(
      `qubes-air relay: the link to ${DEVICE} broke before the call finished\n`,
    );
    await own.daemon.waitLine(/pi-gpg: down: /);
  });
});
