/**
 * The relay end to end over a USB-serial stand-in: the real agent on one end of a socat pty pair,
 * the daemon on the other, the compiled relay run as qrexec runs it. Exit codes, a 16 MiB stream,
 * concurrent calls, and an agent that dies silently on the line (only the keepalive notices) and
 * comes back on the same tty.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { hasSocat, type PtyPair, ptyPair } from "../../fixtures/pty.ts";
import {
  type Agent,
  buildRelay,
  cleanup,
  cli,
  DEVICE,
  type Host,
  type Logged,
  makeHost,
  pairToken,
  runRelayAs,
  startAgent,
  startDaemon,
} from "../../fixtures/qubes-stubs/harness.ts";
import { lacking } from "../helpers/requires.ts";

setDefaultTimeout(30_000);

let pty: PtyPair;
let relay: string;
let agent: Agent;
let host: Host;
let daemon: Logged;

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe.skipIf(lacking(hasSocat() ? null : "socat"))("relay over a serial line (pty pair)", () => {
  beforeAll(async () => {
    pty = await ptyPair();
    agent = await startAgent({ tty: pty.a });
    const token = await pairToken(agent);
    host = makeHost();
    [relay, daemon] = await Promise.all([buildRelay(), startDaemon(host, ["--keepalive-ms", "300"])]);
    const paired = await cli(host, ["pair", DEVICE, "--serial", pty.b, "--token", token]);
    if (paired.code !== 0) throw new Error(paired.stderr);
    await daemon.waitLine(/pi-gpg: up/);
  }, 60_000);
  afterAll(() => {
    cleanup();
    pty?.close();
  });

  test("exit codes 0, 1, 126, 127 and stderr", async () => {
    const [ok, one, denied, missing] = await Promise.all([
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Exit+0` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Exit+1` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Denied+` }),
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Missing+` }),
    ]);
    expect([ok.code, ok.stdout, ok.stderr]).toEqual([0, "stdout line\n", "stderr line\n"]);
    expect(one.code).toBe(1);
    expect(denied.code).toBe(126);
    expect(missing.code).toBe(127);
  });

  test("16 MiB arrive byte-identical, and 64 calls run at once", async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const [big, ...small] = await Promise.all([
      runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: data }),
      ...Array.from({ length: 64 }, (_, i) =>
        runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: `serial ${i}\n` }),
      ),
    ]);
    expect(big!.code).toBe(0);
    expect(sha(big!.bytes)).toBe(sha(data));
    expect(small.map((r) => r.stdout)).toEqual(small.map((_, i) => `serial ${i}\n`));
  }, 60_000);

  test("an agent that dies silently on the line is noticed by the keepalive; it comes back on the same tty", async () => {
    agent.proc.kill("SIGKILL");
    await agent.exited;
    await daemon.waitLine(/pi-gpg: down: keepalive-timeout/, 5000);
    agent = await startAgent({ dir: agent.dir, tty: pty.a });
    await daemon.waitLine(/pi-gpg: up/, 10_000);
    const r = await runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: "again\n" });
    expect([r.code, r.stdout]).toEqual([0, "again\n"]);
  });
});
