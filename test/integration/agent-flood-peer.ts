/**
 * The attacker of test/integration/agent-flood.test.ts, run as its own process (a real attacker
 * is another machine; in the test process it would also slow the host side being measured):
 *   bun agent-flood-peer.ts PORT MAX_MS
 * keeps 64 idle connections to 127.0.0.1:PORT from 32 source addresses (127.0.0.10..41, two
 * each; the odd ones send a valid offer and then stall, the even ones send nothing), each
 * reconnecting as soon as the agent drops it, and floods garbage handshakes from 8 more
 * (127.0.0.50..57): random bytes, a length prefix with nothing after it, or a valid offer with an
 * IK message 1 that cannot decrypt; each ends with FIN at once. Only 127.0.0.0/8 is used (Linux
 * routes it to lo). Stops by itself after MAX_MS or MAX_CONNECTIONS, or on SIGTERM.
 */
import * as net from "node:net";
import { encodeOffer } from "../../core/session/messages.ts";
import { encodeTcpFrame } from "../../core/wire/tcp-frame.ts";
import { platform } from "../../platform/index.ts";

const IDLE = 64;
const PER_ADDRESS = 2;
const FLOOD_ADDRESSES = 8;
const FLOOD_WORKERS = 32;
const MAX_CONNECTIONS = 500_000;

const port = Number(process.argv[2]);
const maxMs = Number(process.argv[3]);
if (!Number.isInteger(port) || !(maxMs > 0)) {
  process.stderr.write("usage: agent-flood-peer.ts PORT MAX_MS\n");
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

const validOffer = encodeTcpFrame(encodeOffer({ mode: "reconnect", suites: ["25519_ChaChaPoly_BLAKE2s"] }));
const garbage = [
  () => platform.randomBytes(1 + (count % 300)),
  () => Uint8Array.of(0x04, 0x00),
  () => Buffer.concat([validOffer, encodeTcpFrame(platform.randomBytes(96))]),
];

async function holder(i: number): Promise<void> {
  const from = `127.0.0.${10 + Math.floor(i / PER_ADDRESS)}`;
  while (running && count < MAX_CONNECTIONS) {
    const s = await connectFrom(from);
    if (!s) continue;
    sockets.add(s);
    count++;
    if (i % 2 === 1) s.write(validOffer);
    await closed(s);
  }
}

async function flooder(w: number): Promise<void> {
  let n = 0;
  while (running && count < MAX_CONNECTIONS) {
    const s = await connectFrom(`127.0.0.${50 + ((w + n++) % FLOOD_ADDRESSES)}`);
    if (!s) continue;
    sockets.add(s);
    count++;
    s.end(garbage[n % garbage.length]!());
    await closed(s);
  }
}

await Promise.all([
  ...Array.from({ length: IDLE }, (_, i) => holder(i)),
  ...Array.from({ length: FLOOD_WORKERS }, (_, w) => flooder(w)),
]);
process.stdout.write(`${count}\n`);
process.exit(0);
