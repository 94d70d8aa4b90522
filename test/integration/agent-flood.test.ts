/**
 * Issue 16.3 against the real agent process: 64 idle connections from 32 loopback addresses and
 * a flood of garbage handshakes from 8 more, kept up by another process the whole time
 * (agent-flood-peer.ts); the paired host, connecting from 127.0.0.1, must have its session
 * within 2 s of starting each attempt. Traffic stays on 127.0.0.0/8; the attacker stops by
 * itself (and is stopped by pid at the end).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { HALF_OPEN_MAX } from "../../core/wire/limits.ts";
import { platform } from "../../platform/index.ts";
import type { ChildProcess } from "../../platform/platform.ts";
import { cleanup, startAgent } from "../helpers/agent/harness.ts";
import { connectHost, pairHost } from "../helpers/agent/host-side.ts";

/** Idle connections the attacker keeps (agent-flood-peer.ts). */
const IDLE = 64;
const RUNS = 5;
const ATTACK_MAX_MS = 90_000;

let attacker: ChildProcess | null = null;
afterEach(async () => {
  attacker?.kill("SIGKILL");
  await attacker?.exited;
  attacker = null;
  cleanup();
});

describe("agent under a connection flood (issue 16.3)", () => {
  test("64 idle connections and a garbage flood from 40 addresses: the paired host gets in within 2 s", async () => {
    expect(IDLE).toBeGreaterThanOrEqual(HALF_OPEN_MAX); // the idle ones alone fill the table
    const agent = await startAgent();
    const { c, hostKey, deviceKey } = await pairHost(agent);
    c.session.close();
    await agent.waitLine(/session-down/);

    attacker = await platform.spawn(
      [
        process.execPath,
        join(import.meta.dir, "agent-flood-peer.ts"),
        String(agent.port),
        String(ATTACK_MAX_MS),
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "inherit" },
    );
    // Full force first: a thousand attack connections dropped by the agent, evictions among them.
    await agent.waitLine(/refused .*code=handshake-rate/);
    for (let i = 0; i < 1000; i++) await agent.waitLine(/refused via="tcp 127\.0\.0\.(?!1:)/);
    const times: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const t0 = performance.now();
      const host = await connectHost(agent.port, { mode: "reconnect", hostKey, deviceKey });
      times.push(performance.now() - t0);
      expect(host.session.isOpen).toBe(true);
      host.session.close();
      await agent.waitLine(/session-down/);
      for (let i = 0; i < 200; i++) await agent.waitLine(/refused via="tcp 127\.0\.0\.(?!1:)/); // still on
    }
    const attacks = agent.lines.filter((l) => /refused via="tcp 127\.0\.0\.(?!1:)/.test(l)).length;
    const evictions = agent.lines.filter((l) => /code=handshake-rate/.test(l)).length;
    process.stderr.write(
      `[flood] host session in ${times.map((t) => t.toFixed(0)).join(", ")} ms; ` +
        `${attacks} attack connections refused (${evictions} evicted)\n`,
    );
    expect(Math.max(...times)).toBeLessThan(2000);
    expect(agent.lines.some((l) => /refused via="tcp 127\.0\.0\.1:/.test(l))).toBe(false); // host never refused
  }, 120_000);
});
