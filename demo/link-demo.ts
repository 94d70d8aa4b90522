/**
 * `bun run demo`: the secure link, end to end, on this machine. Starts an agent process and a
 * host process, pairs them with a one-time token, reconnects with the pinned keys (Noise IK),
 * moves data over 100 concurrent channels with checksums, rekeys during a transfer, and shows
 * that an unpinned key is refused. With socat installed, it repeats the transfer over a pty
 * pair standing in for a USB-serial line. Finishes by itself and cleans up.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { dh25519 } from "../core/noise/crypto-noble.ts";
import { killAll, spawnFixture } from "../fixtures/fixture-process.ts";
import { hasSocat, ptyPair } from "../fixtures/pty.ts";

const PEER = join(import.meta.dir, "../fixtures/link-peer.ts");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const key = () => {
  const k = dh25519.generateKeyPair();
  return { priv: hex(k.privateKey), pub: hex(k.publicKey) };
};
const say = (s: string) => console.log(s);

try {
  const agentKey = key();
  const hostKey = key();
  const token = hex(randomBytes(32));
  say("qubes-air link demo\n");
  const agent = spawnFixture(PEER, ["--role", "agent", "--key", agentKey.priv, "--token", token]);
  const { port } = await agent.waitFor((e) => e.event === "listening");
  say(
    `agent    listening on 127.0.0.1:${port}, key qa-pub:${agentKey.pub.slice(0, 16)}…, one-time token set`,
  );

  const host = (args: string[]) =>
    spawnFixture(PEER, ["--role", "host", "--connect", String(port), "--key", hostKey.priv, ...args]);
  const pair = host(["--mode", "pair-psk", "--token", token]);
  const paired = await pair.waitFor((e) => e.event === "session");
  await pair.waitFor((e) => e.event === "done");
  say(`pairing  Noise_XXpsk3_${paired.suite}: host pinned agent key ${String(paired.peer).slice(0, 16)}…`);

  const run = host(["--mode", "reconnect", "--peer", agentKey.pub, "--channels", "100", "--bytes", "200000"]);
  const s = await run.waitFor((e) => e.event === "session");
  const d = await run.waitFor((e) => e.event === "done");
  say(
    `connect  Noise_IK_${s.suite} in ${Number(s.handshakeMs).toFixed(1)} ms (pinned keys, timestamped message 1)`,
  );
  say(
    `channels 100 concurrent echo channels x 200 kB: ${d.ok ? "all checksums match" : `${d.failed} FAILED`}`,
  );

  const rekey = host([
    "--mode",
    "reconnect",
    "--peer",
    agentKey.pub,
    "--bytes",
    String(16 << 20),
    "--rekey-records",
    "200",
  ]);
  const r = await rekey.waitFor((e) => e.event === "done");
  say(
    `rekey    16 MiB echo with ${r.rekeys} fresh handshakes on the live link: ${r.ok ? "byte-identical" : "FAILED"}`,
  );

  const stranger = spawnFixture(PEER, [
    "--role",
    "host",
    "--connect",
    String(port),
    "--key",
    key().priv,
    "--mode",
    "reconnect",
    "--peer",
    agentKey.pub,
  ]);
  const refused = await agent.waitFor((e) => e.event === "refused");
  await stranger.exited;
  say(`refusal  unknown host key: agent refused (${refused.code})`);

  if (hasSocat()) {
    const pty = await ptyPair();
    const ptys = [pty.a, pty.b];
    const serialAgent = spawnFixture(PEER, [
      "--role",
      "agent",
      "--key",
      agentKey.priv,
      "--pin",
      hostKey.pub,
      "--tty",
      ptys[0]!,
    ]);
    await serialAgent.waitFor((e) => e.event === "listening");
    const serialHost = spawnFixture(PEER, [
      "--role",
      "host",
      "--tty",
      ptys[1]!,
      "--key",
      hostKey.priv,
      "--mode",
      "reconnect",
      "--peer",
      agentKey.pub,
      "--channels",
      "4",
      "--bytes",
      "500000",
    ]);
    const sd = await serialHost.waitFor((e) => e.event === "done");
    say(
      `serial   pty pair (USB-serial stand-in), COBS+CRC-32C frames: 4 channels ${sd.ok ? "intact" : "FAILED"}, ${Number(sd.mbPerSecond).toFixed(1)} MB/s`,
    );
    pty.close();
  } else {
    say("serial   skipped: install socat for the pty demo");
  }
  say("\ndone.");
} finally {
  killAll();
}
process.exit(0);
