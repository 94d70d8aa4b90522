/**
 * `bun bench/experiment.ts [--seconds S] [--reps N] [--variants a;b;c] [--json]`: runs
 * bench/exp-peer.ts host variants against one (product) agent, interleaved so that the noise of
 * a shared VM hits all of them alike, and prints the median MB/s of each. See bench/README.md,
 * "Where the time goes". A variant is exp-peer's --variant, optionally "@N" for N channels.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { dh25519 } from "../core/noise/crypto-noble.ts";
import { killAll, spawnFixture } from "../test/helpers/fixture-process.ts";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string" },
    reps: { type: "string" },
    variants: { type: "string" },
    suite: { type: "string" },
    json: { type: "boolean" },
  },
});
const SECONDS = opts.seconds ?? "2";
const REPS = Number(opts.reps ?? 5);
const SUITE = opts.suite ?? "25519_AESGCM_BLAKE2s";
const VARIANTS = (opts.variants ?? "baseline;seal;cork;nowait;seal,nowait;baseline@4;seal,nowait@4").split(
  ";",
);
const PEER = join(import.meta.dir, "exp-peer.ts");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const host = dh25519.generateKeyPair();
const agentKey = dh25519.generateKeyPair();
try {
  const agent = spawnFixture(PEER, [
    "--role",
    "agent",
    "--key",
    hex(agentKey.privateKey),
    "--pin",
    hex(host.publicKey),
    "--suites",
    SUITE,
  ]);
  const { port } = await agent.waitFor((e) => e.event === "listening", "listening");
  const runs = new Map<string, number[]>(VARIANTS.map((v) => [v, []]));
  for (let rep = -1; rep < REPS; rep++) {
    for (const v of VARIANTS) {
      const [variant, channels] = v.split("@");
      const p = spawnFixture(PEER, [
        "--role",
        "host",
        "--connect",
        String(port),
        "--key",
        hex(host.privateKey),
        "--peer",
        hex(agentKey.publicKey),
        "--suites",
        SUITE,
        "--variant",
        variant!,
        "--channels",
        channels ?? "1",
        "--seconds",
        rep < 0 ? "0.3" : SECONDS, // rep -1 warms the agent
      ]);
      const d = await p.waitFor((e) => e.event === "done", `${v} done`);
      if (d.ok !== true) throw new Error(`${v}: transfer check failed`);
      if (rep >= 0) runs.get(v)!.push(d.mbPerSecond as number);
      await p.exited;
    }
  }
  const out = Object.fromEntries(
    [...runs].map(([v, r]) => [v, { median: Math.round(median(r)), runs: r.map(Math.round) }]),
  );
  if (opts.json)
    process.stdout.write(
      `${JSON.stringify({ suite: SUITE, seconds: Number(SECONDS), variants: out }, null, 2)}\n`,
    );
  else {
    process.stdout.write(`${SUITE}, one way, ${SECONDS} s per run, median of ${REPS} (MB/s)\n`);
    for (const [v, f] of Object.entries(out))
      process.stdout.write(`  ${v.padEnd(20)}${String(f.median).padStart(6)}   runs ${f.runs.join(", ")}\n`);
  }
} finally {
  killAll();
}
process.exit(0);
