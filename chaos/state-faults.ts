/**
 * Faults of the machines' state rather than the line, for `bun run chaos`:
 *   - a full disk on the device during a copy-to (a small tmpfs mounted on QubesIncoming; needs
 *     root, reported "not covered" otherwise),
 *   - host clock jumps: forward (the daemon's IK timestamp an hour ahead), back with the
 *     timestamp state kept, and back with it lost (issue 9 item 4: the device then refuses every
 *     reconnect as a replay, and a fresh pairing must clear that),
 *   - device clock jumps: the agent's own wall clock moved 1 h forward or back while calls run,
 *     and 1 day either way across a kill and restart of the agent (its memory lost, as a Pi
 *     without a battery-backed clock reboots at an old date), through libfaketime
 *     (chaos/device-clock.ts); each run checks with a call that the device really sees the jump.
 * The clock is never changed: a jump is what the daemon's persisted timestamp says about it
 * (host/daemon/timestamps.ts), which is all the link sees of the host's clock.
 * Must never: leave a mount behind (unmounted in finally), or touch the machine's clock.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, DEVICE, pairToken, tempDir } from "../fixtures/qubes-stubs/harness.ts";
import {
  duringSmallCalls,
  type Inject,
  killAgent,
  type Observation,
  qubesAir,
  type Scenario,
  wrongCopies,
} from "./faults.ts";
import type { Rig } from "./rig.ts";
import { bytesFrom } from "./stats.ts";

const HOUR_US = 3_600_000_000n;

const isRoot = () => process.getuid?.() === 0;

/** Probes with calls until one succeeds or `ms` pass: the time it took, or null. */
async function upWithin(rig: Rig, ms: number): Promise<number | null> {
  const t0 = performance.now();
  const back = await rig.recovered(ms);
  return back === null ? null : back - t0;
}

async function restartDaemonWith(rig: Rig, timestamp: bigint | null): Promise<void> {
  await rig.killDaemon("SIGTERM");
  const path = join(rig.host.state, "ik-timestamp");
  if (timestamp === null) rmSync(path, { force: true });
  else writeFileSync(path, `${timestamp}\n`, { mode: 0o600 });
  await rig.restartDaemon();
}

const nowUs = () => BigInt(Date.now()) * 1000n;

function clockScenario(
  name: string,
  expected: string,
  steps: (rig: Rig) => Promise<Observation>,
  slow = false,
): Scenario {
  // The cheap ones (a daemon restart each) run in CI too; the slow one only in the full run.
  return {
    name,
    workload: "idle",
    expected,
    okCodes: ["0"],
    quick: !slow,
    run: (rig) => steps(rig),
  };
}

const idleObservation = (rig: Rig, recoverMs: number | null, note?: string): Observation => ({
  codes: [recoverMs === null ? "125" : "0"],
  callerExitMs: null,
  recoverMs,
  wrong: 0,
  hung: 0,
  leftovers: rig.leftovers(),
  note,
});

function clockScenarios(): Scenario[] {
  return [
    clockScenario("host clock jumps forward 1 h (daemon restarted)", "up again < 2 s", async (rig) => {
      await restartDaemonWith(rig, nowUs() + HOUR_US);
      return idleObservation(rig, await upWithin(rig, 20_000));
    }),
    clockScenario(
      "host clock back 1 h after running ahead, state kept",
      "up again < 2 s (last + 1 is used)",
      async (rig) => {
        await restartDaemonWith(rig, nowUs() + HOUR_US);
        if ((await upWithin(rig, 20_000)) === null)
          return idleObservation(rig, null, "not up after the forward jump");
        await rig.killDaemon("SIGTERM");
        await rig.restartDaemon(); // the file still says +1 h: the clock is "behind" it
        return idleObservation(rig, await upWithin(rig, 20_000));
      },
    ),
    clockScenario(
      "host clock back 1 h after running ahead, state lost; then unpair + pair",
      "refused as a replay until re-paired; then up < 2 s, also after a daemon restart",
      async (rig) => {
        await restartDaemonWith(rig, nowUs() + HOUR_US);
        if ((await upWithin(rig, 20_000)) === null)
          return idleObservation(rig, null, "not up after the forward jump");
        await restartDaemonWith(rig, null);
        const refused = (await upWithin(rig, 3000)) === null;
        const un = await cli(rig.host, ["unpair", DEVICE]);
        const token = await pairToken(rig.agent);
        const t0 = performance.now();
        const pr = await cli(rig.host, ["pair", DEVICE, ...rig.pairArgs, "--token", token]);
        const paired = pr.code === 0 ? await rig.recovered(10_000) : null;
        // The pairing's own session needs no timestamp: the lock-out shows at the next reconnect.
        await rig.killDaemon("SIGTERM");
        const t1 = performance.now();
        await rig.restartDaemon();
        const back = paired === null ? null : await rig.recovered(10_000);
        const note = `${refused ? "refused before re-pairing" : "up without re-pairing"}; unpair ${un.code}, pair ${pr.code}${pr.code ? `: ${pr.stderr.trim().split("\n").pop()?.slice(0, 80)}` : ""}; ${paired === null ? "not up after pairing" : `up ${Math.round(paired - t0)} ms after pairing`}; ${back === null ? "refused again after a daemon restart" : "reconnects after a daemon restart"}`;
        return idleObservation(rig, back === null ? null : back - t1, note);
      },
      true, // a pairing each run: not in the quick set
    ),
  ];
}

function diskFull(): Scenario {
  return {
    name: "device disk full during copy-to (3 MiB tmpfs, 8 MiB file)",
    workload: "copy-to",
    expected: "non-zero exit, “no space left” in words; no .part left; link up",
    okCodes: ["1", "28"],
    quick: false,
    async run(rig, r) {
      if (!isRoot())
        return { ...idleObservation(rig, 0, "needs root to mount a tmpfs: not run"), codes: ["skipped"] };
      const incoming = join(rig.agent.dir, "home", "QubesIncoming");
      mkdirSync(incoming, { recursive: true });
      const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", incoming]);
      if (mounted.status !== 0)
        return { ...idleObservation(rig, 0, `mount failed: ${mounted.stderr}`), codes: ["skipped"] };
      try {
        const sent = bytesFrom(r, 8 << 20);
        const name = `chaos-full-${r.int(0, 1e9)}.bin`;
        const src = join(tempDir("qa-chaos-src-"), name);
        writeFileSync(src, sent);
        const res = await qubesAir(rig, ["copy-to", "--without-progress", DEVICE, src]);
        const t0 = performance.now();
        const back = await rig.recovered();
        const message = res.stderr.trim().split("\n").pop() ?? "";
        const inWords = /no space left/i.test(res.stderr);
        return {
          codes: [inWords ? res.code : `${res.code} (not in words)`],
          callerExitMs: null,
          recoverMs: back === null ? null : back - t0,
          wrong: wrongCopies(incoming, name, sent),
          hung: res.code === "hung" ? 1 : 0,
          leftovers: rig.leftovers(),
          note: message.slice(0, 90),
        };
      } finally {
        spawnSync("umount", ["-l", incoming]);
      }
    },
  };
}

const DAY_S = 86_400;

/** The device's clock as its services see it, against ours: seconds ahead (negative: behind). */
async function deviceSkew(rig: Rig): Promise<number | null> {
  const r = await rig.call("chaos.Date", "");
  if (r.code !== 0) return null;
  return Number(new TextDecoder().decode(r.out).trim()) - Math.floor(Date.now() / 1000);
}

function deviceClockScenario(name: string, seconds: number, restart: boolean, quick: boolean): Scenario {
  const jump: Inject = async (rig) => {
    rig.clock!.jump(seconds);
    if (restart) await killAgent(rig);
  };
  return {
    name,
    workload: "small calls",
    deviceClock: true,
    quick,
    expected: restart
      ? "125 (or 0, every byte intact); recover < 2 s of restart; the device sees the new time"
      : "0, every byte intact; the device sees the new time",
    okCodes: restart ? ["0", "125"] : ["0"],
    async run(rig, r, o) {
      const obs = await duringSmallCalls(rig, r, o.quick, "up", jump);
      const skew = await deviceSkew(rig);
      const expected = rig.clock!.offset;
      // A scenario whose clock did not move tested nothing: fail it (the skew is ±2 s of rounding).
      const moved = skew !== null && Math.abs(skew - expected) <= 2;
      return {
        ...obs,
        codes: moved ? obs.codes : [...obs.codes, "clock not moved"],
        note: `device clock ${skew === null ? "unread" : `${skew >= 0 ? "+" : ""}${skew} s`}`,
      };
    },
  };
}

function deviceClockScenarios(): Scenario[] {
  return [
    deviceClockScenario("device clock jumps forward 1 h (live)", 3600, false, true),
    deviceClockScenario("device clock jumps back 1 h (live)", -3600, false, false),
    deviceClockScenario(
      "device clock forward 1 day, agent killed + restarted (memory lost)",
      DAY_S,
      true,
      false,
    ),
    deviceClockScenario(
      "device clock back 1 day, agent killed + restarted (memory lost)",
      -DAY_S,
      true,
      false,
    ),
  ];
}

export function stateScenarios(): Scenario[] {
  return [diskFull(), ...clockScenarios(), ...deviceClockScenarios()];
}
