/**
 * The bench's Node row (issue 14, "Armory path"): the agent end of the link as the Node bundle
 * the USB Armory runs, i.e. fixtures/link-peer.ts built with `bun build --target=node` and run
 * on Node, where ChaChaPoly is node:crypto's native ChaCha20-Poly1305 (platform/native-aead.ts).
 * The host end stays on Bun, as sys-remote's does. One vchan channel one way over TCP loopback,
 * per suite, median of the runs, like run.ts section 1.
 * Must never: leave the bundle or a process behind (the caller's killAll() covers processes).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { LINK_SUITES } from "../core/noise/suites.ts";
import { type FixtureProcess, spawnFixture } from "../fixtures/fixture-process.ts";

export interface NodeLinkOptions {
  readonly linkPeer: string;
  readonly agentArgs: readonly string[];
  readonly hostArgs: (suite: string) => string[];
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly reps: number;
  readonly log: (s: string) => void;
}

export interface NodeLinkFigures {
  readonly node: string;
  /** MB/s per suite: the median and every run. */
  readonly suites: Record<string, { mbPerSecond: number; runs: number[] }>;
}

const round = (x: number) => Math.round(x * 10) / 10;

async function finished(p: FixtureProcess, what: string): Promise<Record<string, unknown>> {
  const e = await p.waitFor((x) => x.event === "done" || x.event === "refused", what);
  if (e.event !== "done" || e.ok !== true)
    throw new Error(`${what}: ${JSON.stringify(e)}\n${await p.stderr()}`);
  return e;
}

export async function nodeLink(o: NodeLinkOptions): Promise<NodeLinkFigures | { skipped: string }> {
  const node = Bun.which("node");
  if (!node) return { skipped: "node not installed" };
  const dir = fs.mkdtempSync(join(os.tmpdir(), "qa-bench-node-"));
  try {
    const bundle = join(dir, "link-peer.mjs");
    const built = spawnSync(process.execPath, [
      "build",
      "--target=node",
      "--format=esm",
      o.linkPeer,
      "--outfile",
      bundle,
    ]);
    if (built.status !== 0) throw new Error(`bundling the link peer for Node failed:\n${built.stderr}`);
    const version = spawnSync(node, ["--version"]).stdout.toString().trim();
    const agent = spawnFixture(bundle, [...o.agentArgs, "--listen", "0"], [node, bundle]);
    try {
      const { port } = await agent.waitFor((e) => e.event === "listening", "node agent listening");
      const transfer = async (suite: string, seconds: number) => {
        const host = spawnFixture(o.linkPeer, [
          ...o.hostArgs(suite),
          "--connect",
          String(port),
          "--seconds",
          String(seconds),
        ]);
        const d = await finished(host, `node ${suite} transfer`);
        await host.exited;
        return d.mbPerSecond as number;
      };
      const suites: NodeLinkFigures["suites"] = {};
      for (const suite of LINK_SUITES) {
        o.log(`  ours ${suite}, agent on Node...`);
        await transfer(suite, o.warmupSeconds);
        const runs: number[] = [];
        for (let i = 0; i < o.reps; i++) runs.push(await transfer(suite, o.seconds));
        const sorted = [...runs].sort((a, b) => a - b);
        suites[suite] = { mbPerSecond: round(sorted[Math.floor(sorted.length / 2)]!), runs: runs.map(round) };
      }
      return { node: version, suites };
    } finally {
      agent.proc.kill();
      await agent.exited;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
