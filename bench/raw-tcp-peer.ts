/**
 * The raw TCP ceiling for bench/run.ts: the same one-way transfer as `link-peer.ts --sink`, but
 * plain node:net with no crypto and no framing (the transport our link uses underneath).
 *
 *   --role sink                    listens on 127.0.0.1:0, counts bytes to EOF, answers with the
 *                                  count (u64 BE) and EOF; prints {"event":"listening",port}.
 *   --role source --connect PORT (--seconds S | --bytes N)
 *                                  writes one reused 1 MiB block, waiting for 'drain' only
 *                                  (backpressure), half-closes, waits for the count; prints
 *                                  {"event":"done",mbPerSecond,...}.
 */
import * as net from "node:net";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    role: { type: "string" },
    connect: { type: "string" },
    seconds: { type: "string" },
    bytes: { type: "string" },
  },
});
const emit = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);

function sinkRole(): void {
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.setNoDelay(true);
    let n = 0;
    sock.on("data", (c: Buffer) => {
      n += c.length;
    });
    sock.on("end", () => {
      const reply = Buffer.alloc(8);
      reply.writeBigUInt64BE(BigInt(n));
      sock.end(reply);
    });
    sock.on("error", () => sock.destroy());
  });
  server.listen({ host: "127.0.0.1", port: 0 }, () => {
    emit({ event: "listening", port: (server.address() as net.AddressInfo).port });
  });
}

async function sourceRole(): Promise<void> {
  const sock = net.connect({ host: "127.0.0.1", port: Number(a.connect), allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  sock.setNoDelay(true);
  const reply: Buffer[] = [];
  const replied = new Promise<Buffer>((resolve, reject) => {
    sock.on("data", (c: Buffer) => reply.push(c));
    sock.on("end", () => resolve(Buffer.concat(reply)));
    sock.on("error", reject);
  });
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
  const limit = a.seconds ? Number.POSITIVE_INFINITY : Number(a.bytes ?? 1 << 20);
  const deadlineMs = a.seconds ? Number(a.seconds) * 1000 : Number.POSITIVE_INFINITY;
  const t0 = performance.now();
  let sent = 0;
  while (sent < limit && performance.now() - t0 < deadlineMs) {
    const n = Math.min(block.length, limit - sent);
    sent += n;
    if (!sock.write(n === block.length ? block : block.subarray(0, n))) {
      await new Promise<void>((resolve) => sock.once("drain", resolve));
    }
  }
  sock.end();
  const r = await replied;
  const seconds = (performance.now() - t0) / 1000;
  const counted = r.length === 8 ? Number(r.readBigUInt64BE(0)) : -1;
  emit({ event: "done", ok: counted === sent, bytes: sent, seconds, mbPerSecond: sent / seconds / 1e6 });
  sock.destroy();
}

if (a.role === "sink") sinkRole();
else await sourceRole();
