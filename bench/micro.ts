/**
 * `bun bench/micro.ts [--json]`: single-thread micro-benchmarks of the per-record work on the
 * link's data path, to show where the CPU of a bulk transfer goes (see bench/README.md,
 * "Where the time goes"). No sockets: each case is the CPU cost of one 64 KiB record.
 *
 *   seal.current   what a DATA chunk costs today on the sender: vchanRecord() + copy of the data
 *                  (vchan.ts sendData), aesGcmNative.encrypt (update + zeroed out + copy + tag),
 *                  encodeTcpFrame (zeroed frame + copy)
 *   seal.headroom  seal.current with 64 bytes of headroom in both buffers, so the record's data
 *                  and the frame's ciphertext are copied to offset 64 instead of 6 and 2
 *   seal.parts     the same bytes with one copy: the cipher is fed the 6-byte header and the data
 *                  as two update() calls, and the ciphertext lands in one Buffer.allocUnsafe frame
 *                  that already has room for the length prefix
 *   open.current   tcp-record-link recv: aesGcmNative.decrypt of a frame view
 *   chacha.*       the @noble ChaChaPoly path (no native ChaCha in Bun)
 *   copy/alloc     the building blocks: zero-filled vs unsafe allocation, one copy (at offset 0
 *                  and at offset 2: on this AMD EPYC, a copy between buffers that are not
 *                  mutually aligned runs ~15x slower than an aligned one)
 *   x25519.*       one Diffie-Hellman (an IK handshake does 5 per side, plus 1 key generation):
 *                  @noble/curves (what dh25519 uses) vs node:crypto diffieHellman, in ops/s
 *   serial.*       a 16 KiB serial frame (SERIAL_MAX_BODY): encodeSerialFrame (CRC-32C + COBS),
 *                  SerialFrameReader.push of the encoded frame (COBS decode + CRC), both parts
 */
import { createCipheriv, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";
import { parseArgs } from "node:util";
import { aesgcmNonce } from "../core/noise/crypto.ts";
import { chachaPolyNoble, dh25519 } from "../core/noise/crypto-noble.ts";
import { vchanRecord } from "../core/vchan/messages.ts";
import { crc32c } from "../core/wire/crc32c.ts";
import { encodeSerialFrame, SerialFrameReader } from "../core/wire/serial-frame.ts";
import { encodeTcpFrame } from "../core/wire/tcp-frame.ts";
import { aesGcmNative } from "../platform/native-aead.ts";

const { values: opts } = parseArgs({ options: { json: { type: "boolean" }, ms: { type: "string" } } });
const BUDGET_MS = Number(opts.ms ?? 600);
const CHUNK = 65535 - 16 - 6; // VCHAN_MAX_CHUNK: the largest DATA payload
const RECORD = CHUNK + 6;
const EMPTY = new Uint8Array(0);
const key = new Uint8Array(32).fill(7);
const data = new Uint8Array(CHUNK).map((_, i) => (i * 31) & 0xff);
let sink = 0; // keeps results alive

/** MB/s of payload through fn, counted in `unit`-sized units (default one CHUNK). */
function measure(fn: (i: number) => void, unit = CHUNK): number {
  for (let i = 0; i < 200; i++) fn(i); // warm-up and JIT
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < BUDGET_MS) {
    for (let j = 0; j < 50; j++) fn(n++);
    t = performance.now();
  }
  return (n * unit) / ((t - t0) / 1000) / 1e6;
}

function sealCurrent(i: number): Uint8Array {
  const record = vchanRecord(2, 0, data.length);
  record.set(data, 6);
  const ct = aesGcmNative.encrypt(key, BigInt(i), EMPTY, record);
  return encodeTcpFrame(ct);
}

function sealHeadroom(i: number): Uint8Array {
  const record = new Uint8Array(58 + 6 + data.length).subarray(58);
  record.set(vchanRecord(2, 0, 0), 0);
  record.set(data, 6);
  const ct = aesGcmNative.encrypt(key, BigInt(i), EMPTY, record);
  const frame = new Uint8Array(62 + 2 + ct.length).subarray(62);
  frame[0] = ct.length >>> 8;
  frame[1] = ct.length & 0xff;
  frame.set(ct, 2);
  return frame;
}

const header = vchanRecord(2, 0, 0);
function sealParts(i: number): Uint8Array {
  const cipher = createCipheriv("aes-256-gcm", key, aesgcmNonce(BigInt(i)));
  const len = RECORD + 16;
  const frame = Buffer.allocUnsafe(2 + len);
  frame[0] = len >>> 8;
  frame[1] = len & 0xff;
  let off = 2;
  for (const part of [header, data]) {
    const c = cipher.update(part);
    frame.set(c, off);
    off += c.length;
  }
  cipher.final();
  frame.set(cipher.getAuthTag(), off);
  return frame;
}

const sealed = aesGcmNative.encrypt(
  key,
  0n,
  EMPTY,
  (() => {
    const r = vchanRecord(2, 0, data.length);
    r.set(data, 6);
    return r;
  })(),
);
const chachaSealed = chachaPolyNoble.encrypt(key, 0n, EMPTY, sealed.subarray(0, RECORD));

const results: Record<string, number> = {
  "seal.current (aesgcm native)": measure((i) => {
    sink ^= sealCurrent(i)[3]!;
  }),
  "seal.headroom (copies land at offset 64)": measure((i) => {
    sink ^= sealHeadroom(i)[3]!;
  }),
  "seal.parts (aesgcm native, one copy)": measure((i) => {
    sink ^= sealParts(i)[3]!;
  }),
  "encrypt only (aesGcmNative.encrypt)": measure((i) => {
    sink ^= aesGcmNative.encrypt(key, BigInt(i), EMPTY, data)[0]!;
  }),
  "cipher.update only (no copy out)": measure((i) => {
    const c = createCipheriv("aes-256-gcm", key, aesgcmNonce(BigInt(i)));
    sink ^= c.update(data)[0]!;
    c.final();
    sink ^= c.getAuthTag()[0]!;
  }),
  "open.current (aesGcmNative.decrypt)": measure(() => {
    sink ^= aesGcmNative.decrypt(key, 0n, EMPTY, sealed)[0]!;
  }),
  "chacha seal (noble encrypt)": measure((i) => {
    sink ^= chachaPolyNoble.encrypt(key, BigInt(i), EMPTY, data)[0]!;
  }),
  "chacha open (noble decrypt)": measure(() => {
    sink ^= chachaPolyNoble.decrypt(key, 0n, EMPTY, chachaSealed)[0]!;
  }),
  "alloc new Uint8Array(64K) (zeroed)": measure(() => {
    sink ^= new Uint8Array(RECORD + 18)[5]!;
  }),
  "alloc Buffer.allocUnsafe(64K)": measure(() => {
    sink ^= Buffer.allocUnsafe(RECORD + 18)[5]!;
  }),
  "zeroed alloc + one copy (encodeTcpFrame)": measure(() => {
    sink ^= encodeTcpFrame(data)[5]!;
  }),
  "one copy, reused buffer, offset 0": (() => {
    const dst = new Uint8Array(RECORD + 18);
    return measure(() => {
      dst.set(data, 0);
      sink ^= dst[5]!;
    });
  })(),
  "one copy, reused buffer, offset 2": (() => {
    const dst = new Uint8Array(RECORD + 18);
    return measure(() => {
      dst.set(data, 2);
      sink ^= dst[5]!;
    });
  })(),
  ...serial(),
};

function serial(): Record<string, number> {
  const BODY = 16 * 1024;
  const body = new Uint8Array(BODY).map((_, i) => (i * 2654435761) >>> 24); // zeros included
  const frame = { type: 2 as const, epoch: 1, counter: 5n, body };
  const encoded = encodeSerialFrame(frame, { leadingDelimiter: true }).slice();
  const reader = new SerialFrameReader();
  return {
    "serial.crc32c (16 KiB)": measure(() => {
      sink ^= crc32c(body);
    }, BODY),
    "serial.encode frame (16 KiB body)": measure((i) => {
      sink ^= encodeSerialFrame({ ...frame, counter: BigInt(i) }, { leadingDelimiter: true })[3]!;
    }, BODY),
    "serial.reader push+next (16 KiB body)": measure(() => {
      reader.push(encoded);
      sink ^= reader.next()!.body[0]!;
    }, BODY),
  };
}

const ops: Record<string, number> = x25519();

/**
 * GB/s of one 64 KiB copy from a fresh (page-aligned) buffer into another at each offset: shows
 * the band of offsets where the copy is slow on this CPU.
 */
function offsetScan(): Record<string, number> {
  const src = new Uint8Array(CHUNK).fill(3);
  const dst = new Uint8Array(CHUNK + 8192);
  const out: Record<string, number> = {};
  for (const off of [0, 2, 6, 16, 31, 32, 64, 4096, 4098]) {
    out[String(off)] = measure(() => dst.set(src, off)) / 1000;
  }
  return out;
}
const copyAt = offsetScan();

function opsPerSecond(fn: () => void): number {
  for (let i = 0; i < 50; i++) fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < BUDGET_MS) {
    fn();
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

function x25519(): Record<string, number> {
  const a = dh25519.generateKeyPair();
  const b = dh25519.generateKeyPair();
  // PKCS#8 / SPKI wrappers of raw X25519 keys (RFC 8410), for node:crypto KeyObjects.
  const priv = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), a.privateKey]),
    format: "der",
    type: "pkcs8",
  });
  const pub = createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b656e032100", "hex"), b.publicKey]),
    format: "der",
    type: "spki",
  });
  const same = Buffer.from(diffieHellman({ privateKey: priv, publicKey: pub })).equals(
    Buffer.from(dh25519.dh(a.privateKey, b.publicKey)),
  );
  if (!same) throw new Error("node:crypto and @noble X25519 disagree");
  return {
    "x25519.noble dh": opsPerSecond(() => {
      sink ^= dh25519.dh(a.privateKey, b.publicKey)[0]!;
    }),
    "x25519.node:crypto dh (+2 KeyObjects)": opsPerSecond(() => {
      const k = createPrivateKey({
        key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), a.privateKey]),
        format: "der",
        type: "pkcs8",
      });
      const p = createPublicKey({
        key: Buffer.concat([Buffer.from("302a300506032b656e032100", "hex"), b.publicKey]),
        format: "der",
        type: "spki",
      });
      sink ^= diffieHellman({ privateKey: k, publicKey: p })[0]!;
    }),
  };
}

if (opts.json) {
  const json = { mbPerSecond: results, opsPerSecond: ops, copyGBPerSecondAtOffset: copyAt, sink: sink & 0 };
  process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
} else {
  const w = Math.max(...Object.keys(results).map((k) => k.length)) + 2;
  process.stdout.write(`per 64 KiB record, one thread, MB/s of payload (${BUDGET_MS} ms each)\n`);
  for (const [k, v] of Object.entries(results))
    process.stdout.write(`  ${k.padEnd(w)}${v.toFixed(0).padStart(7)}\n`);
  process.stdout.write("one 64 KiB copy into a buffer at offset N, GB/s\n  ");
  process.stdout.write(
    `${Object.entries(copyAt)
      .map(([k, v]) => `${k}: ${v.toFixed(1)}`)
      .join("   ")}\n`,
  );
  process.stdout.write("handshake crypto, ops/s\n");
  for (const [k, v] of Object.entries(ops))
    process.stdout.write(`  ${k.padEnd(w)}${v.toFixed(0).padStart(7)}\n`);
  if (sink === 0.5) process.stdout.write("\n");
}
