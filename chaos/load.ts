/**
 * The load figures of `bun run chaos` (issue 9, "Load in the same suite"): on one live rig,
 * 1,000 sequential calls, 256 concurrent calls mixing small and large, and a slow reader beside
 * bulk transfers, with a sign-sized call (200 bytes in, 600 out) timed idle and under the bulk
 * load; p50/p99, calls/s, peak RSS (VmHWM) of agent and daemon against RSS_BOUND_MIB, every
 * answer checked byte for byte; and the SSH-per-call baseline of bench/call-latency.ts measured
 * in the same run.
 * Must never: count a call as timed when its answer was wrong (wrong answers are reported).
 */
import { measureCallLatency } from "../bench/call-latency.ts";
import { peakRssKiB, Rig, wrongDelivery } from "./rig.ts";
import { bytesFrom, quantile, rng, round } from "./stats.ts";

/** Peak RSS either process may reach under this load (idle agent: ~68 MiB peak, bench/README.md). */
export const RSS_BOUND_MIB = 256;
/** The sign-sized call's p99 under bulk load may be at most this many times its idle p99. */
export const STARVATION_FACTOR = 10;

const SIGN_OUT = new Uint8Array(600).fill("s".charCodeAt(0));

export interface Latency {
  readonly n: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly callsPerSecond?: number;
}

export interface LoadFigures {
  readonly sequential: Latency;
  readonly concurrentSmall: Latency;
  readonly concurrentLarge: Latency;
  readonly concurrentCallsPerSecond: number;
  readonly signIdle: Latency;
  readonly signUnderBulk: Latency;
  readonly slowReaderMBps: number;
  readonly bulkMBps: number;
  readonly wrong: number;
  readonly failed: number;
  readonly agentPeakRssMiB: number;
  readonly daemonPeakRssMiB: number;
  readonly rssBoundMiB: number;
  readonly ssh: {
    readonly relayP50Ms: number;
    readonly sshPerCallP50Ms: number | null;
    readonly sshMultiplexedP50Ms: number | null;
    readonly sshPerCallP99Ms: number | null;
    readonly skipped?: string;
  };
  readonly withinBounds: boolean;
}

const lat = (samples: number[], seconds?: number): Latency => ({
  n: samples.length,
  p50Ms: round(quantile(samples, 0.5), 1),
  p99Ms: round(quantile(samples, 0.99), 1),
  ...(seconds ? { callsPerSecond: round(samples.length / seconds, 1) } : {}),
});

export async function measureLoad(o: { quick: boolean; log: (l: string) => void }): Promise<LoadFigures> {
  const r = rng(9);
  // The shipped keepalive (10 s, 3 missed): the suite's 500 ms one would end the link when 256
  // relay processes starting at once keep agent and daemon off the CPU for 1.5 s.
  const rig = await Rig.start(undefined, { defaults: true });
  let wrong = 0;
  let failed = 0;
  /** Peak RSS (MiB) of agent and daemon so far, for the progress lines: which phase grows it. */
  const peaks = () =>
    `peak RSS agent ${Math.round((peakRssKiB(rig.agent.proc.pid) ?? 0) / 1024)} MiB, daemon ${Math.round((peakRssKiB(rig.daemon.proc.pid) ?? 0) / 1024)} MiB`;
  const check = (sent: Uint8Array, res: Awaited<ReturnType<Rig["call"]>>, expect = sent) => {
    if (res.code !== 0) failed++;
    else if (wrongDelivery(expect, res)) wrong++;
  };
  try {
    // Sign-sized calls while idle.
    const signN = o.quick ? 30 : 100;
    const sign = async () => {
      const sent = bytesFrom(r, 200);
      const res = await rig.call("chaos.Sign", sent);
      check(sent, res, SIGN_OUT);
      return res.ms;
    };
    const signIdle: number[] = [];
    for (let i = 0; i < signN; i++) signIdle.push(await sign());
    o.log(`load: sign-sized idle p99 ${round(quantile(signIdle, 0.99), 1)} ms; ${peaks()}`);

    // Sequential small calls.
    const seqN = o.quick ? 100 : 1000;
    const seq: number[] = [];
    const small = bytesFrom(r, 200);
    const t0 = performance.now();
    for (let i = 0; i < seqN; i++) {
      const res = await rig.call("test.Echo", small);
      check(small, res);
      seq.push(res.ms);
    }
    const sequential = lat(seq, (performance.now() - t0) / 1000);
    o.log(
      `load: ${seqN} sequential calls, p50 ${sequential.p50Ms} ms, ${sequential.callsPerSecond} calls/s; failed so far ${failed}; ${peaks()}`,
    );

    // 256 concurrent: 224 small, 32 large.
    const large = bytesFrom(r, o.quick ? 256 << 10 : 1 << 20);
    const t1 = performance.now();
    const mixed = await Promise.all(
      Array.from({ length: 256 }, async (_, i) => {
        const sent = i % 8 === 7 ? large : small;
        const res = await rig.call("test.Echo", sent, 120_000);
        check(sent, res);
        return { large: sent === large, ms: res.ms };
      }),
    );
    const concurrentCallsPerSecond = round(256 / ((performance.now() - t1) / 1000), 1);
    o.log(
      `load: 256 concurrent calls, ${concurrentCallsPerSecond} calls/s; failed so far ${failed}, wrong ${wrong}; ${peaks()}`,
    );

    // A slow reader and bulk echo calls, with sign-sized calls beside them.
    const bulkSize = o.quick ? 4 << 20 : 16 << 20;
    const bulk = bytesFrom(r, bulkSize);
    const slowReader = async () => {
      const t = performance.now();
      const proc = rig.spawnRelay("test.Echo");
      const write = (async () => {
        proc.stdin.write(bulk.subarray(0, bulkSize / 4));
        await proc.stdin.end();
      })().catch(() => {}); // a relay that ended early: its exit code says why
      let got = 0;
      const reader = proc.stdout.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.length;
        await Bun.sleep(5); // the slow reader: its slowness is the load being measured
      }
      await write;
      const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      if (code !== 0 || got !== bulkSize / 4) {
        failed++;
        o.log(`load: slow reader: exit ${code}, ${got} of ${bulkSize / 4} bytes: ${stderr.trim()}`);
      }
      return got / ((performance.now() - t) / 1000) / 1e6;
    };
    let bulkDone = false;
    const tb = performance.now();
    const bulkCalls = Promise.all([
      slowReader(),
      ...[0, 1].map(async () => {
        const res = await rig.call("test.Echo", bulk, 300_000);
        check(bulk, res);
      }),
    ]).finally(() => {
      bulkDone = true;
    });
    const signLoaded: number[] = [];
    while (!bulkDone || signLoaded.length < 10) signLoaded.push(await sign());
    const [slowMBps] = await bulkCalls;
    const bulkMBps = round((2 * bulkSize) / ((performance.now() - tb) / 1000) / 1e6, 1);
    o.log(
      `load: sign-sized under bulk p99 ${round(quantile(signLoaded, 0.99), 1)} ms (n=${signLoaded.length}); ${peaks()}`,
    );

    const agentPeak = (peakRssKiB(rig.agent.proc.pid) ?? 0) / 1024;
    const daemonPeak = (peakRssKiB(rig.daemon.proc.pid) ?? 0) / 1024;
    await rig.stop();

    const calls = o.quick ? 50 : 200;
    const base = await measureCallLatency({ calls, sshCalls: o.quick ? 10 : 50 });
    o.log(`load: ssh per call p50 ${base.sshPerCall?.p50Ms ?? "-"} ms, relay p50 ${base.relay.p50Ms} ms`);

    const signIdleL = lat(signIdle);
    const signUnderBulk = lat(signLoaded);
    const withinBounds =
      wrong === 0 &&
      failed === 0 &&
      agentPeak <= RSS_BOUND_MIB &&
      daemonPeak <= RSS_BOUND_MIB &&
      signUnderBulk.p99Ms <= STARVATION_FACTOR * Math.max(signIdleL.p99Ms, 50);
    return {
      sequential,
      concurrentSmall: lat(mixed.filter((m) => !m.large).map((m) => m.ms)),
      concurrentLarge: lat(mixed.filter((m) => m.large).map((m) => m.ms)),
      concurrentCallsPerSecond,
      signIdle: signIdleL,
      signUnderBulk,
      slowReaderMBps: round(slowMBps as number, 2),
      bulkMBps,
      wrong,
      failed,
      agentPeakRssMiB: round(agentPeak, 1),
      daemonPeakRssMiB: round(daemonPeak, 1),
      rssBoundMiB: RSS_BOUND_MIB,
      ssh: {
        relayP50Ms: base.relay.p50Ms,
        sshPerCallP50Ms: base.sshPerCall?.p50Ms ?? null,
        sshPerCallP99Ms: base.sshPerCall?.p99Ms ?? null,
        sshMultiplexedP50Ms: base.sshMultiplexed?.p50Ms ?? null,
        skipped: base.sshSkipped,
      },
      withinBounds,
    };
  } finally {
    await rig.stop().catch(() => {});
  }
}

export function loadTable(l: LoadFigures): string {
  const row = (what: string, x: Latency, extra = "") =>
    `| ${what} | ${x.n} | ${x.p50Ms} | ${x.p99Ms} | ${x.callsPerSecond ?? "-"} | ${extra} |`;
  return [
    "| load | calls | p50 ms | p99 ms | calls/s | notes |",
    "|---|---|---|---|---|---|",
    row("sequential small calls (200 B echo)", l.sequential),
    row("256 concurrent: small (200 B)", l.concurrentSmall, `all 256: ${l.concurrentCallsPerSecond} calls/s`),
    row("256 concurrent: large", l.concurrentLarge),
    row("sign-sized (200 B in, 600 out), idle", l.signIdle),
    row(
      "sign-sized beside 2 bulk echoes + a slow reader",
      l.signUnderBulk,
      `bulk ${l.bulkMBps} MB/s, slow reader ${l.slowReaderMBps} MB/s; bound: p99 ≤ ${STARVATION_FACTOR}× idle`,
    ),
    `| SSH per call (same run, bench/call-latency.ts) | - | ${l.ssh.sshPerCallP50Ms ?? "-"} | ${l.ssh.sshPerCallP99Ms ?? "-"} | - | relay p50 ${l.ssh.relayP50Ms} ms; ssh multiplexed p50 ${l.ssh.sshMultiplexedP50Ms ?? "-"} ms${l.ssh.skipped ? `; ssh skipped: ${l.ssh.skipped}` : ""} |`,
    "",
    `Peak RSS (VmHWM): agent ${l.agentPeakRssMiB} MiB, daemon ${l.daemonPeakRssMiB} MiB (bound ${l.rssBoundMiB} MiB each). Wrong answers ${l.wrong}, failed calls ${l.failed}.`,
  ].join("\n");
}
