/**
 * `bun bench/experiment.ts [--seconds S] [--reps N] [--variants "a;b;c"] [--serial] [--json]`:
 * runs bench/exp-peer.ts host variants against the product's receive path, interleaved so that
 * the noise of a shared VM hits all of them alike, and prints the median MB/s of each. See
 * bench/README.md, "Where the time goes". A variant is exp-peer's --variant, optionally with
 * "@N" for N channels at once. With --serial the link is the serial one over a socat pty pair
 * (a fresh pair and agent per run; default variants "baseline;backoff;hybrid").
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { dh25519 } from "../core/noise/crypto-noble.ts";
import { type FixtureProcess, killAll, spawnFixture } from "../fixtures/fixture-process.ts";
import { type PtyPair, ptyPair } from "./pty-pair.ts";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string" },
    reps: { type: "string" },
    variants: { type: "string" },
    suite: { type: "string" },
    serial: { type: "boolean" },
    json: { type: "boolean" },
  },
});
const SECONDS = opts.seconds ?? "2";
const REPS = Number(opts.reps ?? 5);
const SUITE = opts.suite ?? "25519_AESGCM_BLAKE2s";
const SERIAL = opts.serial === true;
const DEFAULT_VARIANTS = SERIAL
  ? "baseline;backoff;hybrid"
  : "baseline;headroom;seal;pool;nowait;pool,nowait;baseline@4";
const VARIANTS = (opts.variants ?? DEFAULT_VARIANTS).split(";");
const PEER = join(import.meta.dir, "exp-peer.ts");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const hostKey = dh25519.generateKeyPair();
const agentKey = dh25519.generateKeyPair();
const agentArgs = ["--role", "agent", "--key", hex(agentKey.privateKey), "--pin", hex(hostKey.publicKey)];
const hostArgs = (variant: string, channels: string, seconds: string) => [
  ...["--role", "host", "--key", hex(hostKey.privateKey), "--peer", hex(agentKey.publicKey)],
  ...["--suites", SUITE, "--variant", variant, "--channels", channels, "--seconds", seconds],
];
const stops: (() => void)[] = [];

/** One timed run: over TCP against the shared agent, over serial with its own pair and agent. */
async function once(tcpPort: number, v: string, seconds: string): Promise<number> {
  const [variant, channels = "1"] = v.split("@") as [string, string?];
  let agent: FixtureProcess | null = null;
  let pair: PtyPair | null = null;
  try {
    let host: FixtureProcess;
    if (SERIAL) {
      pair = await ptyPair((stop) => stops.push(stop));
      agent = spawnFixture(PEER, [...agentArgs, "--suites", SUITE, "--tty", pair.a, "--variant", variant]);
      await agent.waitFor((e) => e.event === "listening", "serial agent listening");
      host = spawnFixture(PEER, [...hostArgs(variant, channels, seconds), "--tty", pair.b]);
    } else {
      host = spawnFixture(PEER, [...hostArgs(variant, channels, seconds), "--connect", String(tcpPort)]);
    }
    const d = await host.waitFor((e) => e.event === "done", `${v} done`);
    if (d.ok !== true) throw new Error(`${v}: transfer check failed`);
    await host.exited;
    return d.mbPerSecond as number;
  } finally {
    agent?.proc.kill("SIGKILL");
    pair?.stop();
  }
}

try {
  let port = 0;
  if (!SERIAL) {
    const agent = spawnFixture(PEER, [...agentArgs, "--suites", SUITE]);
    port = (await agent.waitFor((e) => e.event === "listening", "listening")).port as number;
  }
  const runs = new Map<string, number[]>(VARIANTS.map((v) => [v, []]));
  for (let rep = -1; rep < REPS; rep++) {
    for (const v of VARIANTS) {
      const mb = await once(port, v, rep < 0 ? "0.3" : SECONDS); // rep -1 only warms up
      if (rep >= 0) runs.get(v)!.push(mb);
    }
  }
  const out = Object.fromEntries(
    [...runs].map(([v, r]) => [v, { median: Math.round(median(r)), runs: r.map(Math.round) }]),
  );
  const link = SERIAL ? "serial over a socat pty pair" : "TCP loopback";
  if (opts.json) {
    const json = { link, suite: SUITE, seconds: Number(SECONDS), reps: REPS, variants: out };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    process.stdout.write(`${SUITE}, ${link}, one way, ${SECONDS} s per run, median of ${REPS} (MB/s)\n`);
    for (const [v, f] of Object.entries(out)) {
      process.stdout.write(`  ${v.padEnd(20)}${String(f.median).padStart(6)}   runs ${f.runs.join(", ")}\n`);
    }
  }
} finally {
  killAll();
  for (const stop of stops) stop();
}
process.exit(0);
