/**
 * Issue 16.3 with the real sys-remote daemon (its own connect loop and backoff): while 64 idle
 * connections and a flood of DH-costing handshakes from 2000 loopback addresses run against the
 * agent (agent-flood-peer.ts), a daemon restarted with kill -9 gets its link up with its first attempt:
 * never refused, never "down", so no backoff delay. (How long one attempt takes under the flood
 * is measured in agent-flood.test.ts; the daemon logs nothing when it starts connecting, so here
 * the time from spawn, process start included, is only reported.) Traffic stays on 127.0.0.0/8;
 * the attacker stops by itself and is killed by pid.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, DEVICE, pairedHost, startDaemon } from "../../fixtures/qubes-stubs/harness.ts";
import { platform } from "../../platform/index.ts";
import type { ChildProcess } from "../../platform/platform.ts";

const RUNS = 3;
const ATTACK_MAX_MS = 90_000;
/** The agent counts refusals and writes one summary per window (agent/link/refusal-log.ts). */
const FLOOD_WINDOW = /refused-summary refused=(\d+)/;

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
    const registry = JSON.parse(readFileSync(join(host.state, "registry.json"), "utf8"));
    const deviceKey = String(registry.remotes[0].agentKey).replace(/^qa-pub:/, "");
    attacker = await platform.spawn(
      [
        process.execPath,
        join(import.meta.dir, "agent-flood-peer.ts"),
        String(agent.port),
        String(ATTACK_MAX_MS),
        deviceKey,
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "inherit" },
    );
    expect(Number((await agent.waitLine(FLOOD_WINDOW))[1])).toBeGreaterThan(500); // full force
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
    }
    expect(Number((await agent.waitLine(FLOOD_WINDOW))[1])).toBeGreaterThan(500); // the flood went on
    process.stderr.write(
      `[flood] daemon spawned to link up: ${times.map((t) => t.toFixed(0)).join(", ")} ms\n`,
    );
  }, 120_000);
});
