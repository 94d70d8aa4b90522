/**
 * split-gpg v1 under load and abuse (attack classes d and e): 100 MB through a decrypt with
 * bounded memory; gpg filling its output pipes in awkward orders while the client is slow to
 * read; a client that never sends EOF is cut off by the wall-time limit; an input over the byte
 * cap; a slow-loris header.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, createReadStream, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Gpg1Limits, serveGpg1 } from "../../agent/services/gpg/gpg1-service.ts";
import { encodeHeader } from "../../core/gpg/v1-wire.ts";
import { platform } from "../../platform/index.ts";
import {
  type Confirming,
  cleanup,
  confirming,
  type Device,
  killAgents,
  makeDevice,
  quietLog,
} from "../fixtures/gpg/env.ts";
import { type Serve1, v1Call } from "../fixtures/gpg/v1-client.ts";

let device: Device;
let c: Confirming;
const MiB = 1024 * 1024;

beforeAll(async () => {
  device = await makeDevice();
  c = await confirming("approve");
}, 60_000);

afterAll(async () => {
  await c?.close();
  if (!device) return;
  await killAgents(device.served, device.primary);
  cleanup(device.dir);
});

function serveWith(limits: Gpg1Limits = {}, gpg?: string): Serve1 {
  return (io) =>
    serveGpg1(io, {
      source: "work",
      gnupgHome: device.served,
      confirm: c.confirm,
      audit: c.audit,
      limits,
      log: quietLog,
      ...(gpg ? { gpg } : {}),
    });
}

/** Encrypts `mib` MiB of pseudo-random data to the device key into a file; returns its sha256. */
async function makeCiphertext(file: string, mib: number): Promise<string> {
  const child = await platform.spawn(
    [
      "gpg",
      "--homedir",
      device.served,
      "--batch",
      "--compress-algo",
      "none",
      "--trust-model",
      "always",
    ].concat(["-r", device.fingerprint, "-o", file, "-e"]),
    { stdout: "ignore", stderr: "ignore" },
  );
  const hash = createHash("sha256");
  const block = platform.randomBytes(MiB);
  for (let i = 0; i < mib; i++) {
    block[0] = i & 0xff;
    hash.update(block);
    await child.stdin!.write(block);
  }
  await child.stdin!.closeWrite();
  expect((await child.exited).code).toBe(0);
  return hash.digest("hex");
}

async function* fileChunks(path: string): AsyncIterable<Uint8Array> {
  for await (const c of createReadStream(path, { highWaterMark: 256 * 1024 })) yield c as Uint8Array;
}

describe("v1 size and deadlock", () => {
  test("100 MB through decrypt with bounded memory", async () => {
    const file = join(device.dir, "big.gpg");
    const expected = await makeCiphertext(file, 100);
    Bun.gc(true);
    const base = process.memoryUsage().rss;
    // What the test process already holds (other test files run in the same process: the HCL
    // parser's WASM memory alone is ~50 MiB) is not this transfer's: growth is measured.
    const baseHeap = process.memoryUsage().heapUsed;
    let peak = base;
    let peakHeap = baseHeap;
    const sampler = setInterval(() => {
      Bun.gc(true);
      peak = Math.max(peak, process.memoryUsage().rss);
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    }, 50);
    const hash = createHash("sha256");
    const t0 = performance.now();
    const r = await v1Call(serveWith(), {
      args: ["-d"],
      stdin: fileChunks(file),
      onOutput: (i, d) => {
        if (i === 0) hash.update(d);
      },
    });
    clearInterval(sampler);
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `100 MiB decrypt via v1: ${secs.toFixed(2)} s, peak RSS +${((peak - base) / MiB).toFixed(1)} MiB heap +${((peakHeap - baseHeap) / MiB).toFixed(1)} MiB over ${(baseHeap / MiB).toFixed(1)} MiB held before`,
    );
    expect(r.exit).toBe(0);
    expect(r.outputBytes[0]).toBe(100 * MiB);
    expect(hash.digest("hex")).toBe(expected);
    // Not proportional to the 100 MiB that went through: nothing is buffered whole.
    expect(peakHeap - baseHeap).toBeLessThan(32 * MiB);
    expect(peak - base).toBeLessThan(64 * MiB);
  }, 120_000);

  const orders: [string, string][] = [
    [
      "stderr, then stdout, then status",
      "head -c 3000000 /dev/zero >&2; head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&3",
    ],
    [
      "status, then stderr, then stdout",
      "head -c 3000000 /dev/zero >&3; head -c 3000000 /dev/zero >&2; head -c 3000000 /dev/zero",
    ],
  ];
  for (const [name, script] of orders) {
    test(`gpg fills its outputs in an awkward order (${name}) while the client reads late`, async () => {
      const fake = join(device.dir, `fake-gpg-${name.length}`);
      writeFileSync(fake, `#!/bin/sh\n${script}\nexit 3\n`);
      chmodSync(fake, 0o755);
      const r = await v1Call(serveWith({ wallMs: 30_000 }, fake), {
        args: ["--status-fd", "3", "--list-config"],
        readDelayMs: 300,
        onOutput: () => {},
      });
      expect(r.exit).toBe(3);
      expect(r.outputBytes).toEqual([3000000, 3000000, 3000000]);
    }, 30_000);
  }

  test("a client that never sends EOF is cut off by the wall-time limit", async () => {
    const t0 = performance.now();
    const r = await v1Call(serveWith({ wallMs: 800 }), {
      args: ["--store"],
      stdin: new Uint8Array(10),
      noEof: true,
    });
    expect(r.exit).toBe(124);
    expect(r.outputs[1]).toContain("longer than the device allows");
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  test("an input over the byte cap is cut off", async () => {
    async function* endless() {
      for (let i = 0; i < 64; i++) yield new Uint8Array(256 * 1024);
    }
    const r = await v1Call(serveWith({ maxInputBytes: MiB }), {
      args: ["--store"],
      stdin: endless(),
      onOutput: () => {},
    });
    expect(r.exit).toBe(2);
  });

  test("a slow-loris header is refused by the header time limit", async () => {
    const header = encodeHeader([new TextEncoder().encode("-k")]);
    const r = await v1Call(serveWith({ headerMs: 200 }), {
      header,
      headerPieces: [1, 1, 1],
      noEof: true,
      raw: new Uint8Array(0),
    });
    // The pieces arrive 5 ms apart and then the rest: this one completes in time.
    expect(r.serviceStatus).toBe(0);
    const slow = await v1Call(serveWith({ headerMs: 200 }), {
      header: header.slice(0, 500),
      closeAfter: false,
      noEof: true,
      raw: new Uint8Array(0),
    });
    expect(slow.exit).toBeNull();
    expect(slow.serviceStderr).toContain("did not arrive in time");
  });
});
