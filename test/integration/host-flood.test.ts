/**
 * Issue 16.3 with the real sys-remote daemon (its own connect loop and backoff): while 64 idle
 * connections and a garbage flood from 40 loopback addresses run against the agent
 * (agent-flood-peer.ts), a daemon restarted with kill -9 gets its link up with its first attempt:
 * never refused, never "down", so no backoff delay. (How long one attempt takes under the flood
 * is measured in agent-flood.test.ts; the daemon logs nothing when it starts connecting, so here
 * the time from spawn, process start included, is only reported.) Traffic stays on 127.0.0.0/8;
 * the attacker stops by itself and is killed by pid.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { cleanup, DEVICE, pairedHost, startDaemon } from "../../fixtures/qubes-stubs/harness.ts";
import { platform } from "../../platform/index.ts";
import type { ChildProcess } from "../../platform/platform.ts";

const RUNS = 3;
const ATTACK_MAX_MS = 90_000;
const ATTACK_LINE = /refused via="tcp 127\.0\.0\.(?!1:)/;

let attacker: ChildProcess | null = null;
afterEach(async () => {
  attacker?.kill("SIGKILL");
  await attacker?.exited;
  attacker = null;
  cleanup();
});

describe("the daemon under a connection flood (issue 16.3)", () => {
  test("a restarted daemon's first attempt gets through while the agent is flooded", async () => {
    const { agent, host, daemon } = await pairedHost();
    attacker = await platform.spawn(
      [
        process.execPath,
        join(import.meta.dir, "agent-flood-peer.ts"),
        String(agent.port),
        String(ATTACK_MAX_MS),
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "inherit" },
    );
    await agent.waitLine(/refused .*code=handshake-rate/);
    for (let i = 0; i < 1000; i++) await agent.waitLine(ATTACK_LINE);
    let current = daemon;
    const times: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      current.proc.kill("SIGKILL");
      await current.exited;
      const spawned = performance.now();
      current = await startDaemon(host);
      await current.waitLine(new RegExp(`${DEVICE}: (up|down)`), 20_000);
      times.push(performance.now() - spawned);
      expect(current.lines.filter((l) => l.includes(`${DEVICE}: `))).toEqual([
        expect.stringMatching(new RegExp(`${DEVICE}: up`)),
      ]);
      for (let i = 0; i < 200; i++) await agent.waitLine(ATTACK_LINE); // the flood went on
    }
    process.stderr.write(
      `[flood] daemon spawned to link up: ${times.map((t) => t.toFixed(0)).join(", ")} ms\n`,
    );
    expect(agent.lines.some((l) => /refused via="tcp 127\.0\.0\.1:/.test(l))).toBe(false);
  }, 120_000);
});
