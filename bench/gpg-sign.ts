/**
 * `bun bench/gpg-sign.ts [--n 40] [--json]`: signing latency through split-gpg2 on the device
 * (serveGpg2 with an auto-approving fake button; the client's stock gpg on its own
 * S.gpg-agent, as in test/integration/gpg-v2.test.ts) against a local `gpg --detach-sign` with
 * the same key, measured in the same run; plus one raw Assuan signing round trip
 * (SIGKEY, SETHASH, PKSIGN) through the filter against the same round trip straight to the
 * agent's restricted socket. Prints each, and the ratios. The link (vchan, Noise) is not in
 * this measurement: it is the device's own cost.
 */
import { parseArgs } from "node:util";
import { agentSockets, capture, loadKeyring } from "../agent/services/gpg/gpg-tools.ts";
import { serveGpg2 } from "../agent/services/gpg/gpg2-service.ts";
import {
  agentSocketOf,
  cleanup,
  confirming,
  killAgents,
  makeClient,
  makeDevice,
  quietLog,
  tempDir,
} from "../test/fixtures/gpg/env.ts";
import { serveSocket } from "../test/fixtures/gpg/sockets.ts";
import { assuanSession } from "../test/fixtures/gpg/stack.ts";

const { values } = parseArgs({ options: { n: { type: "string" }, json: { type: "boolean" } } });
const N = Number(values.n ?? 40);

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: q(0.5), p90: q(0.9) };
}

async function time(n: number, f: () => Promise<void>): Promise<number[]> {
  for (let i = 0; i < 3; i++) await f(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    out.push(performance.now() - t0);
  }
  return out;
}

const device = await makeDevice("Bench <bench@example.invalid>");
const client = await makeClient(device);
const c = await confirming("approve");
const served = await serveSocket(await agentSocketOf(client), (io) =>
  serveGpg2(io, {
    source: "bench",
    gnupgHome: device.served,
    confirm: c.confirm,
    audit: c.audit,
    log: quietLog,
  }),
);
const dir = tempDir("bench");
const file = `${dir}/msg`;
await Bun.write(file, "x".repeat(1024));
const sign = (home: string) => async () => {
  const r = await capture([
    "gpg",
    "--homedir",
    home,
    "--batch",
    "--no-tty",
    "--detach-sign",
    "-o",
    "-",
    file,
  ]);
  if (r.status !== 0) throw new Error(`gpg failed: ${new TextDecoder().decode(r.stderr)}`);
};

const k = (await loadKeyring(device.served)).primaries[0]!;
const grip = k.subkeys.find((x) => x.capabilities.includes("s"))!.keygrip;
const script = `SIGKEY ${grip}\nSETHASH 8 ${"C".repeat(64)}\nPKSIGN\nBYE\n`;
const clientSocket = await agentSocketOf(client);
const extra = (await agentSockets(device.served)).extra;
const raw = (socket: string) => async () => {
  const got = await assuanSession(socket, script);
  if (!got.includes("D (7:sig-val")) throw new Error("no signature");
};

const results = {
  splitGpg2: stats(await time(N, sign(client))),
  localGpg: stats(await time(N, sign(device.served))),
  rawThroughFilter: stats(await time(N, raw(clientSocket))),
  rawToAgent: stats(await time(N, raw(extra))),
};
const ratio = {
  gpg: results.splitGpg2.p50 / results.localGpg.p50,
  raw: results.rawThroughFilter.p50 / results.rawToAgent.p50,
};

await served.close();
await c.close();
await killAgents(device.served, device.primary, client);
cleanup(device.dir, client, dir);

if (values.json) console.log(JSON.stringify({ n: N, results, ratio }));
else {
  const row = (name: string, s: ReturnType<typeof stats>) =>
    `${name.padEnd(44)} ${s.p50.toFixed(1).padStart(7)} ${s.p90.toFixed(1).padStart(7)} ${s.mean.toFixed(1).padStart(7)}`;
  console.log(`split-GPG signing latency, ${N} runs each (ms)      p50     p90    mean`);
  console.log(row("gpg --detach-sign via serveGpg2 (auto-approve)", results.splitGpg2));
  console.log(row("gpg --detach-sign, local, same key", results.localGpg));
  console.log(row("Assuan SIGKEY/SETHASH/PKSIGN via serveGpg2", results.rawThroughFilter));
  console.log(row("Assuan SIGKEY/SETHASH/PKSIGN to gpg-agent", results.rawToAgent));
  console.log(`ratio (p50): gpg ${ratio.gpg.toFixed(2)}x, raw round trip ${ratio.raw.toFixed(2)}x`);
}
