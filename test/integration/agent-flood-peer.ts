/**
 * The attacker of test/integration/agent-flood.test.ts, run as its own process (a real attacker
 * is another machine; in the test process it would also slow the host side being measured):
 *   bun agent-flood-peer.ts PORT MAX_MS DEVICE_KEY_HEX
 * From many source addresses at once, all in 127.0.0.0/8 (Linux routes it to lo):
 *   - holders: 64 idle connections, one per address (127.0.1.1..64), so that a half-open table
 *     that evicts the oldest entry overall sees no address holding more than another; the odd
 *     ones send a valid offer and stall, the even ones send nothing; each reconnects at once
 *     when dropped.
 *   - flooders: 32 workers, every connection from the next of FLOOD_ADDRESSES addresses
 *     (127.0.2.1 onwards, ~8 per /24, so per-address limits never bite), each sending a valid
 *     offer and then the costliest thing it can without doing DH itself: a real IK message 1
 *     from an unpinned key (precomputed once, replayed: 2 X25519 for the agent before it can
 *     refuse it), a message 1 of random bytes after a real ephemeral (1 X25519), or garbage.
 * Only 127.0.0.0/8 is used. Stops by itself after MAX_MS or MAX_CONNECTIONS, or on SIGTERM;
 * prints the number of connections made.
 */
import * as net from "node:net";
import { LINK_SUITES, makeResolver } from "../../core/noise/suites.ts";
import { initiateHandshake } from "../../core/session/handshake.ts";
import { generateStaticKeyPair, publicKeyFromBytes } from "../../core/session/key-text.ts";
import { encodeChoice, encodeOffer } from "../../core/session/messages.ts";
import { encodeTcpFrame } from "../../core/wire/tcp-frame.ts";
import { platform } from "../../platform/index.ts";
import { ScriptedLink } from "../helpers/scripted-link.ts";

const HOLDERS = 64;
const FLOOD_WORKERS = 32;
const FLOOD_ADDRESSES = 2000;
const MAX_CONNECTIONS = 500_000;
const SUITE = LINK_SUITES[0];

const port = Number(process.argv[2]);
const maxMs = Number(process.argv[3]);
const deviceKeyHex = process.argv[4] ?? "";
if (!Number.isInteger(port) || !(maxMs > 0) || !/^[0-9a-f]{64}$/.test(deviceKeyHex)) {
  process.stderr.write("usage: agent-flood-peer.ts PORT MAX_MS DEVICE_KEY_HEX\n");
  process.exit(2);
}

let running = true;
let count = 0;
const sockets = new Set<net.Socket>();
const stop = () => {
  running = false;
  for (const s of sockets) s.destroy();
};
process.on("SIGTERM", stop);
setTimeout(stop, maxMs).unref();

/** Real IK message 1s from strangers' keys, for the offer below (the agent picks SUITE). */
const offer = encodeOffer({ mode: "reconnect", suites: [SUITE] });
const resolver = makeResolver();
const realMsg1: Uint8Array[] = [];
for (let i = 0; i < 8; i++) {
  const link = new ScriptedLink([encodeChoice({ suite: SUITE })]);
  await initiateHandshake({
    link,
    resolver,
    staticKey: generateStaticKeyPair(),
    version: "flood-1",
    suites: [SUITE],
    mode: "reconnect",
    responderKey: publicKeyFromBytes(Uint8Array.from(Buffer.from(deviceKeyHex, "hex"))),
    timestamp: () => 1n,
  }).catch(() => {}); // the script ends after the choice: message 1 is in link.sent
  realMsg1.push(link.sent[1]!);
}
const ephemeral = realMsg1[0]!.subarray(0, 32);

const offerFrame = encodeTcpFrame(offer);
const attacks = [
  () => Buffer.concat([offerFrame, encodeTcpFrame(realMsg1[count % realMsg1.length]!)]),
  () => Buffer.concat([offerFrame, encodeTcpFrame(Buffer.concat([ephemeral, platform.randomBytes(64)]))]),
  () => Buffer.concat([offerFrame, encodeTcpFrame(realMsg1[(count + 1) % realMsg1.length]!)]),
  () => platform.randomBytes(1 + (count % 300)),
];

/** A socket from a chosen loopback source address; null if it could not connect. */
function connectFrom(localAddress: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    s.resume(); // read and drop what the agent sends (a paused socket never sees its end)
    s.once("connect", () => resolve(s));
    s.once("error", () => resolve(null));
  });
}

/** The agent dropped the connection (FIN or RST), or we stopped; our end is then destroyed. */
function closed(s: net.Socket): Promise<void> {
  return new Promise<void>((r) => {
    const done = () => {
      s.destroy();
      sockets.delete(s);
      r();
    };
    if (!running || s.destroyed || s.readyState === "closed") return done();
    for (const event of ["close", "end", "error"]) s.once(event, done);
  });
}

async function holder(i: number): Promise<void> {
  const from = `127.0.1.${1 + i}`;
  while (running && count < MAX_CONNECTIONS) {
    const s = await connectFrom(from);
    if (!s) continue;
    sockets.add(s);
    count++;
    if (i % 2 === 1) s.write(offerFrame);
    await closed(s);
  }
}

let next = 0;
function floodAddress(): string {
  const n = next++ % FLOOD_ADDRESSES;
  return `127.0.${2 + Math.floor(n / 250)}.${1 + (n % 250)}`;
}

async function flooder(): Promise<void> {
  let n = 0;
  while (running && count < MAX_CONNECTIONS) {
    const s = await connectFrom(floodAddress());
    if (!s) continue;
    sockets.add(s);
    count++;
    s.end(attacks[n++ % attacks.length]!());
    await closed(s);
  }
}

await Promise.all([
  ...Array.from({ length: HOLDERS }, (_, i) => holder(i)),
  ...Array.from({ length: FLOOD_WORKERS }, () => flooder()),
]);
process.stdout.write(`${count}\n`);
process.exit(0);
