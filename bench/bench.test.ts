/**
 * Smoke test of the bench: `bun bench/run.ts --quick --json` runs every measurement with small
 * sizes and prints one JSON object whose figures are all positive numbers. Only the OpenSSH
 * figures may be null, and only when sshd is not installed (likewise serial without socat).
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { findSshd } from "./ssh.ts";

const positive = (x: unknown, what: string) => {
  expect({ what, ok: typeof x === "number" && Number.isFinite(x) && x > 0 }).toEqual({ what, ok: true });
};

test("bun bench/run.ts --quick --json gives every figure", async () => {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "run.ts"), "--quick", "--json"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`bench exited ${code}:\n${err}`);
  const r = JSON.parse(out);

  for (const suite of ["25519_ChaChaPoly_BLAKE2s", "25519_AESGCM_BLAKE2s"]) {
    positive(r.ours.tcp[suite].mbPerSecond, `ours ${suite}`);
  }
  positive(r.ours.best.mbPerSecond, "ours best");
  if (Bun.which("node") === null) expect(r.ours.tcpAgentOnNode).toBeNull();
  else
    for (const suite of ["25519_ChaChaPoly_BLAKE2s", "25519_AESGCM_BLAKE2s"])
      positive(r.ours.tcpAgentOnNode.suites[suite].mbPerSecond, `ours ${suite}, agent on Node`);
  positive(r.rawTcp.mbPerSecond, "raw tcp");
  positive(r.ratios.oursBestOverRawTcp, "ours/raw tcp");
  positive(r.handshake.ikColdProcessMedianMs, "cold handshake");
  positive(r.handshake.ikWarmMedianMs, "warm handshake");
  positive(r.agentMemory.vmHWMKiB, "agent VmHWM");
  positive(r.agentMemory.vmRSSKiB, "agent VmRSS");

  if (findSshd() === null) {
    expect(r.ssh).toBeNull();
    expect(r.ratios.oursBestOverSshBest).toBeNull();
  } else {
    for (const f of Object.values(r.ssh.ciphers) as { mbPerSecond: number }[]) positive(f.mbPerSecond, "ssh");
    positive(r.ssh.best.mbPerSecond, "ssh best");
    positive(r.ratios.oursBestOverSshBest, "ours/ssh");
  }

  if (Bun.which("socat") === null) expect(r.serial.link).toBeNull();
  else {
    positive(r.serial.link.mbPerSecond, "serial link");
    positive(r.serial.rawPty.mbPerSecond, "raw pty");
    positive(r.serial.transportOnly.mbPerSecond, "serial transport");
    positive(r.ratios.serialOverRawPty, "serial/raw pty");
  }
  positive(r.callLatency.relay.p50Ms, "relay call p50");
  if (r.sshSkipped === null) positive(r.callLatency.perCallRatio, "ssh per call / relay");
  expect(r.targets.map((t: { name: string }) => t.name)).toEqual([
    "ours_best / ssh_best",
    "serial / raw_pty",
    "ssh_per_call_p50 / relay_call_p50",
  ]);
}, 90_000);
