/**
 * Call latency through the RemoteVM relay vs an SSH relay, measured side by side (issue "Remote
 * qubes"; DESIGN.md "Performance": p50 at least 20x lower than an SSH-per-call relay).
 *
 *   ours       the compiled `qubesair.NoiseProxy` run exactly as qrexec runs a service (argv[1],
 *              QREXEC_* env, stdin/stdout), through the real host daemon, over a live TCP link
 *              to a real agent, which runs a service script and returns its output and status
 *   ssh        `ssh host CMD` per call (the upstream doc's qubesair.SSHProxy) against a
 *              throwaway sshd on 127.0.0.1, and the same with a multiplexed master connection
 *
 * Both sides run the same tiny remote command (print a line to stdout and one to stderr, exit 0),
 * one call after another, each a fresh process like a qrexec service start. Standalone:
 * `bun bench/call-latency.ts [--calls N] [--json]`; bench/run.ts includes it.
 */
import { join } from "node:path";
import { buildRelay, cleanup, pairedHost, runRelayAs } from "../fixtures/qubes-stubs/harness.ts";
import { findSshd, type Sshd, sshClientArgs, startSshd } from "./ssh.ts";

export interface Percentiles {
  readonly n: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface CallLatency {
  readonly relay: Percentiles;
  readonly sshPerCall: Percentiles | null;
  readonly sshMultiplexed: Percentiles | null;
  /** sshPerCall.p50 / relay.p50: target >= 20. */
  readonly perCallRatio: number | null;
  readonly multiplexedRatio: number | null;
  readonly sshSkipped?: string;
}

const REMOTE = 'echo "stdout line"; echo "stderr line" >&2; exit 0';

function percentiles(samples: number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { n: s.length, p50Ms: round(at(0.5)), p99Ms: round(at(0.99)) };
}

const round = (x: number) => Math.round(x * 100) / 100;

async function timeCalls(n: number, call: () => Promise<void>): Promise<Percentiles> {
  await call(); // warm-up: page cache, the first connection
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    samples.push(performance.now() - t0);
  }
  return percentiles(samples);
}

async function runChecked(argv: string[], env?: Record<string, string>): Promise<void> {
  const proc = Bun.spawn(argv, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0 || !out.includes("stdout line")) throw new Error(`${argv[0]} call failed (${code})`);
}

function sshArgs(sshd: Sshd, extra: string[]): string[] {
  return ["ssh", ...sshClientArgs(sshd), ...extra, "-p", String(sshd.port), "127.0.0.1", REMOTE];
}

export async function measureCallLatency(o: {
  calls: number;
  sshCalls: number;
  noSsh?: boolean;
}): Promise<CallLatency> {
  const relay = await buildRelay();
  const { host } = await pairedHost({ agent: { tcp: "127.0.0.1:0" } });
  // test.Exit (the harness's service): "stdout line", "stderr line", exit $1.
  const ours = await timeCalls(o.calls, async () => {
    const r = await runRelayAs(relay, host, { argument: "pi-gpg+test.Exit+0" });
    if (r.code !== 0 || !r.stdout.includes("stdout line"))
      throw new Error(`relay call failed (${r.code}): ${r.stderr.trim()}`);
  });
  const sshdPath = o.noSsh ? null : findSshd();
  if (!sshdPath) {
    return {
      relay: ours,
      sshPerCall: null,
      sshMultiplexed: null,
      perCallRatio: null,
      multiplexedRatio: null,
      sshSkipped: o.noSsh ? "--no-ssh" : "no sshd",
    };
  }
  const sshd = await startSshd(sshdPath);
  try {
    const perCall = await timeCalls(o.sshCalls, () => runChecked(sshArgs(sshd, [])));
    const mux = [
      "-o",
      "ControlMaster=auto",
      "-o",
      `ControlPath=${join(sshd.dir, "cm-%C")}`,
      "-o",
      "ControlPersist=60",
    ];
    const multiplexed = await timeCalls(o.sshCalls, () => runChecked(sshArgs(sshd, mux)));
    Bun.spawnSync(sshArgs(sshd, [...mux, "-O", "exit"]).filter((a) => a !== REMOTE));
    return {
      relay: ours,
      sshPerCall: perCall,
      sshMultiplexed: multiplexed,
      perCallRatio: round(perCall.p50Ms / ours.p50Ms),
      multiplexedRatio: round(multiplexed.p50Ms / ours.p50Ms),
    };
  } finally {
    sshd.stop();
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const calls = Number(args[args.indexOf("--calls") + 1] ?? 0) || 100;
  try {
    const r = await measureCallLatency({ calls, sshCalls: Math.max(10, Math.round(calls / 5)) });
    if (args.includes("--json")) console.log(JSON.stringify(r, null, 2));
    else {
      const row = (name: string, p: Percentiles | null) =>
        console.log(
          `${name.padEnd(28)} ${p ? `p50 ${p.p50Ms} ms  p99 ${p.p99Ms} ms  (n=${p.n})` : "not measured"}`,
        );
      row("relay (qubesair.NoiseProxy)", r.relay);
      row("ssh per call", r.sshPerCall);
      row("ssh multiplexed master", r.sshMultiplexed);
      console.log(
        `ssh per call / relay p50: ${r.perCallRatio ?? "-"}x (target >= 20x); multiplexed: ${r.multiplexedRatio ?? "-"}x`,
      );
    }
  } finally {
    cleanup();
  }
  process.exit(0);
}
