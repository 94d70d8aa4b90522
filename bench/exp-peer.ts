/**
 * An EXPERIMENT, not product code: the one-way bulk transfer of `link-peer.ts --sink`, with the
 * sender's record path swapped for variants that show what the lead could change in
 * core/session/tcp-record-link.ts, platform/native-aead.ts and transport/node-stream.ts, and
 * what each change buys end to end (bench/README.md, "Where the time goes"). Same handshake,
 * session, vchan and receiver as the product; only TcpRecordLink.send and the socket write differ.
 *
 *   --variant baseline   TcpRecordLink over transport/tcp.ts (what link-peer.ts runs)
 *   --variant F[,F...]   our own send path with these features:
 *       headroom seal as today, but build the frame 62 bytes into its buffer so the ciphertext is
 *                copied to offset 64, not 2 (see bench/micro.ts: a copy whose destination sits
 *                1..31 bytes past the source modulo 4 KiB runs ~16x slower on this CPU)
 *       seal     seal with node:crypto update() straight into one Buffer.allocUnsafe frame with
 *                room for the prefix: one copy, no zero-filled intermediate buffers (today: update
 *                output, a zeroed `out` + copy, a zeroed frame + copy)
 *       cork     seal, but write [prefix, body, tag] as three writes under cork(): no copy at all
 *       pool     seal, into frames from a small pool that are reused once their write
 *                callback fired (fresh 64 KiB buffers cost page faults and zeroing each time)
 *       nowait   a record's write resolves as soon as the socket took it (write() returned true),
 *                or on 'drain'; not on the write callback (today: one record in flight)
 *   (without seal/cork the record is sealed as today: CipherState + encodeTcpFrame)
 *
 * With --tty PATH (both roles) the link is the product's SerialRecordLink over a pty instead, and
 * the variant is about the serial write path (transport/serial.ts):
 *       baseline  openSerial() as it is (non-blocking fs.write, sleep 1..16 ms on EAGAIN)
 *       backoff   openSerial()'s reader, writes through bench/tty-writer.ts "backoff" (a copy of
 *                 serial.ts's loop: checks that the copy performs like the original)
 *       hybrid    openSerial()'s reader, writes through bench/tty-writer.ts "hybrid" (retry on
 *                 setImmediate for up to 2 ms of EAGAINs before sleeping)
 *       pipelined openSerial() as it is, but a write resolves at once while less than 64 KiB are
 *                 queued behind the write in flight: the next frame is sealed and encoded while
 *                 the pool thread writes the previous one (today each record waits for its write)
 *
 *   agent: --role agent --key HEX --pin HEX --variant V          (listens on 127.0.0.1:0)
 *   host:  --role host --connect PORT --key HEX --peer HEX --suites S --seconds N --variant V
 *          [--channels N]   N channels at once (default 1), to see the per-channel window's share
 *
 * The seal variant reaches into CipherState's private key and nonce: fine for a measurement,
 * not a design; the real change is an AEAD call that seals record parts into frame parts.
 */
import { createCipheriv } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import { parseArgs } from "node:util";
import { assert } from "../core/errors.ts";
import type { CipherState } from "../core/noise/cipher-state.ts";
import { aesgcmNonce } from "../core/noise/crypto.ts";
import { dh25519 } from "../core/noise/crypto-noble.ts";
import { type LinkSuiteName, makeResolver } from "../core/noise/suites.ts";
import { systemClock } from "../core/session/duplex.ts";
import { type Connected, connectAsInitiator, connectAsResponder } from "../core/session/establish.ts";
import type { RecordLink } from "../core/session/record-link.ts";
import { SerialRecordLink } from "../core/session/serial-record-link.ts";
import { TcpRecordLink } from "../core/session/tcp-record-link.ts";
import type { Channel } from "../core/vchan/channel.ts";
import { NOISE_MAX_PLAINTEXT } from "../core/wire/limits.ts";
import { encodeTcpFrame, TcpFrameReader } from "../core/wire/tcp-frame.ts";
import { nativeCiphers } from "../platform/native-aead.ts";
import { duplexStream } from "../transport/node-stream.ts";
import type { ByteStream } from "../transport/transport.ts";
import { ttyWriter } from "./tty-writer.ts";

const { values: a } = parseArgs({
  options: {
    role: { type: "string" },
    connect: { type: "string" },
    key: { type: "string" },
    pin: { type: "string" },
    peer: { type: "string" },
    suites: { type: "string" },
    seconds: { type: "string" },
    variant: { type: "string" },
    channels: { type: "string" },
    tty: { type: "string" },
  },
});
const variant = a.variant ?? "baseline";
const features = new Set(variant.split(","));
const cork = features.has("cork");
const pool = features.has("pool");
const seal = features.has("seal") || cork || pool;
const framePool: Buffer[] = [];
const nowait = features.has("nowait");
const headroom = features.has("headroom");
const emit = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y));
const resolver = makeResolver(nativeCiphers());
const staticKey = dh25519.keyPairFromPrivate(unhex(a.key!));
const suites = (a.suites ?? "25519_AESGCM_BLAKE2s").split(",") as LinkSuiteName[];
const EMPTY = new Uint8Array(0);

/** TcpRecordLink with the variant's send path; recv is the product's. */
class VariantLink implements RecordLink {
  readonly transport = "tcp";
  readonly maxRecord = NOISE_MAX_PLAINTEXT;
  private readonly reader = new TcpFrameReader();
  private sendKey: CipherState | null = null;
  private recvKey: CipherState | null = null;
  private aesgcm = false;
  private records = 0;

  constructor(
    private readonly sock: net.Socket,
    private readonly stream: ByteStream,
    private readonly suite: () => string | null,
  ) {}

  get recordsSinceKey(): number {
    return this.records;
  }

  sendHandshake(message: Uint8Array): Promise<void> {
    return this.stream.write(encodeTcpFrame(message));
  }

  async recvHandshake(): Promise<Uint8Array> {
    return (await this.nextFrame())!;
  }

  setSendKey(cs: CipherState): void {
    this.sendKey = cs;
    this.aesgcm = this.suite()?.includes("AESGCM") ?? false;
    this.records = 0;
  }

  setRecvKey(cs: CipherState): void {
    this.recvKey = cs;
    this.records = 0;
  }

  send(plaintext: Uint8Array): Promise<void> {
    assert(this.sendKey !== null, "send before keys");
    this.records++;
    if (!seal || !this.aesgcm) {
      const ct = this.sendKey.encryptWithAd(EMPTY, plaintext);
      let frame: Uint8Array;
      if (headroom) {
        frame = new Uint8Array(62 + 2 + ct.length).subarray(62);
        frame[0] = ct.length >>> 8;
        frame[1] = ct.length & 0xff;
        frame.set(ct, 2);
      } else frame = encodeTcpFrame(ct);
      return nowait ? this.put([frame]) : this.stream.write(frame);
    }
    // CipherState internals, for the experiment only (see the header).
    const cs = this.sendKey as unknown as { k: Uint8Array; n: bigint };
    const cipher = createCipheriv("aes-256-gcm", cs.k, aesgcmNonce(cs.n));
    cs.n += 1n;
    const len = plaintext.length + 16;
    const body = cipher.update(plaintext);
    cipher.final();
    if (cork) return this.put([Uint8Array.of(len >>> 8, len & 0xff), body, cipher.getAuthTag()]);
    const whole = (pool && framePool.pop()) || Buffer.allocUnsafe(2 + NOISE_MAX_PLAINTEXT + 16);
    const frame = whole.subarray(0, 2 + len);
    frame[0] = len >>> 8;
    frame[1] = len & 0xff;
    frame.set(body, 2);
    frame.set(cipher.getAuthTag(), 2 + body.length);
    return this.put([frame], pool ? () => framePool.push(whole) : undefined);
  }

  /** Writes the parts; nowait: resolve once the socket took them, else on the last callback. */
  private put(parts: Uint8Array[], release?: () => void): Promise<void> {
    if (parts.length > 1) this.sock.cork();
    for (let i = 0; i < parts.length - 1; i++) this.sock.write(parts[i]!);
    if (nowait) {
      const ok = this.sock.write(parts.at(-1)!, release);
      if (parts.length > 1) this.sock.uncork();
      return ok ? Promise.resolve() : new Promise((resolve) => this.sock.once("drain", resolve));
    }
    const done = new Promise<void>((resolve, reject) =>
      this.sock.write(parts.at(-1)!, (e) => {
        release?.();
        if (e) reject(e);
        else resolve();
      }),
    );
    if (parts.length > 1) this.sock.uncork();
    return done;
  }

  async recv(): Promise<Uint8Array | null> {
    const frame = await this.nextFrame();
    if (frame === null) return null;
    this.records++;
    return this.recvKey!.decryptWithAd(EMPTY, frame);
  }

  close(): void {
    this.stream.close();
  }

  private async nextFrame(): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.reader.next();
      if (frame !== undefined) return frame;
      const chunk = await this.stream.read();
      if (chunk === null) return null;
      this.reader.push(chunk);
    }
  }
}

function makeLink(sock: net.Socket, suite: () => string | null): RecordLink {
  sock.setNoDelay(true);
  const stream = duplexStream(sock, "exp");
  return variant === "baseline" ? new TcpRecordLink(stream) : new VariantLink(sock, stream, suite);
}

/** --tty: the product's serial stream, or with --variant backoff|hybrid its writes swapped. */
async function openTty(path: string): Promise<ByteStream> {
  const { openSerial } = await import("../transport/serial.ts");
  const base = await openSerial(path);
  if (variant === "pipelined") {
    let queued = 0;
    return {
      ...base,
      read: () => base.read(),
      close: () => base.close(),
      closeWrite: () => base.closeWrite(),
      write(data) {
        const p = base.write(data);
        queued += data.length;
        void p.then(
          () => (queued -= data.length),
          () => (queued -= data.length),
        );
        // An error still surfaces: the stream stays failed, so a later write rejects.
        return queued <= 64 * 1024 ? Promise.resolve() : p;
      },
    };
  }
  if (variant !== "backoff" && variant !== "hybrid") return base;
  const { O_WRONLY, O_NOCTTY, O_NONBLOCK } = fs.constants;
  const fd = fs.openSync(path, O_WRONLY | O_NOCTTY | O_NONBLOCK);
  const writer = ttyWriter(fd, variant);
  return {
    description: base.description,
    closed: base.closed,
    read: () => base.read(),
    write: (data) => writer.write(data),
    closeWrite: () => writer.drained(),
    close() {
      base.close();
      void writer.drained().then(() => fs.close(fd, () => {}));
    },
  };
}

async function sink(ch: Channel): Promise<void> {
  let n = 0;
  for (let c = await ch.read(); c; c = await ch.read()) n += c.length;
  const reply = new Uint8Array(8);
  new DataView(reply.buffer).setBigUint64(0, BigInt(n), false);
  await ch.write(reply);
  await ch.closeWrite();
}

const peers = (() => {
  let ts = -1n;
  return {
    isPinned: (k: Uint8Array) => same(k, unhex(a.pin ?? "")),
    acceptTimestamp(_k: Uint8Array, t: bigint) {
      if (t <= ts) return false;
      ts = t;
      return true;
    },
  };
})();

if (a.role === "agent" && a.tty) {
  for (;;) {
    const stream = await openTty(a.tty);
    emit({ event: "listening", tty: a.tty });
    try {
      const c = await connectAsResponder(
        {
          link: new SerialRecordLink(stream),
          resolver,
          staticKey,
          version: "exp-agent",
          suites,
          peers,
          pairing: {},
        },
        { clock: systemClock, onOpen: (ch) => void sink(ch).catch(() => {}) },
      );
      await c.session.closed;
    } catch {
      stream.close();
    }
  }
} else if (a.role === "agent") {
  let ts = -1n;
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    let chosen: string | null = null;
    const link = makeLink(sock, () => chosen);
    // The suite is known only after the offer; the agent offers exactly one.
    chosen = suites[0]!;
    connectAsResponder(
      {
        link,
        resolver,
        staticKey,
        version: "exp-agent",
        suites,
        peers: {
          isPinned: (k) => same(k, unhex(a.pin!)),
          acceptTimestamp(_k, t) {
            if (t <= ts) return false;
            ts = t;
            return true;
          },
        },
        pairing: {},
      },
      { clock: systemClock, onOpen: (ch) => void sink(ch).catch(() => {}) },
    ).catch(() => sock.destroy());
  });
  server.listen({ host: "127.0.0.1", port: 0 }, () =>
    emit({ event: "listening", port: (server.address() as net.AddressInfo).port }),
  );
} else {
  let link: RecordLink;
  if (a.tty) link = new SerialRecordLink(await openTty(a.tty), BigInt(Date.now()));
  else {
    const sock = net.connect({ host: "127.0.0.1", port: Number(a.connect), allowHalfOpen: true });
    await new Promise((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    link = makeLink(sock, () => suites[0]!);
  }
  const c: Connected = await connectAsInitiator(
    {
      link,
      resolver,
      staticKey,
      version: "exp-host",
      suites,
      mode: "reconnect",
      responderKey: unhex(a.peer!),
      timestamp: () => BigInt(Date.now()) * 1000n,
    },
    { clock: systemClock, onOpen: (ch) => ch.close() },
  );
  const block = new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24);
  const t0 = performance.now();
  const one = async () => {
    const ch = c.vchan.open(new Uint8Array(0));
    let sent = 0;
    while (performance.now() - t0 < Number(a.seconds ?? 2) * 1000) {
      await ch.write(block);
      sent += block.length;
    }
    await ch.closeWrite();
    const parts: Uint8Array[] = [];
    for (let chunk = await ch.read(); chunk; chunk = await ch.read()) parts.push(chunk);
    const reply = Buffer.concat(parts);
    return { sent, ok: reply.length === 8 && Number(reply.readBigUInt64BE(0)) === sent };
  };
  const results = await Promise.all(Array.from({ length: Number(a.channels ?? 1) }, one));
  const seconds = (performance.now() - t0) / 1000;
  const sent = results.reduce((x, r) => x + r.sent, 0);
  const ok = results.every((r) => r.ok);
  emit({
    event: "done",
    ok,
    variant,
    suite: c.established.suite,
    bytes: sent,
    seconds,
    mbPerSecond: sent / seconds / 1e6,
  });
  c.session.close();
  await c.session.closed;
  process.exit(0);
}
