/**
 * Throughput of our streams against the raw runtime calls in the same run (DESIGN.md
 * "Performance we aim for"): TCP loopback through the ByteStream, and serial through a pty pair
 * against plain blocking fs.readSync/fs.writeSync on the same pair, writer and reader in separate
 * processes. What is asserted is that every byte arrives; the figures are only printed. Speed
 * is judged by `bun run bench` (serial vs raw pty, side by side in one run), never by a timed
 * test, which a busy CI machine would flake.
 */

import { afterAll, afterEach, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hasSocat, type PtyPair, ptyPair } from "../../fixtures/pty.ts";
import { platform } from "../../platform/index.ts";
import { tcpConnect, tcpListen } from "../../transport/tcp.ts";
import type { ByteStream } from "../../transport/transport.ts";
import { lacking } from "../helpers/requires.ts";

const dir = fs.mkdtempSync(join(tmpdir(), "qa-throughput-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let pty: PtyPair | null = null;
afterEach(async () => {
  await pty?.close();
  pty = null;
});

test("TCP loopback through ByteStream: 64 KiB writes", async () => {
  const total = 512 * 1024 * 1024;
  let done!: (n: number) => void;
  const received = new Promise<number>((r) => {
    done = r;
  });
  const l = await tcpListen("127.0.0.1", 0, async (s: ByteStream) => {
    let n = 0;
    for (let c = await s.read(); c; c = await s.read()) n += c.length;
    done(n);
    s.close();
  });
  const c = await tcpConnect("127.0.0.1", l.port);
  const buf = new Uint8Array(64 * 1024);
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += buf.length) await c.write(buf);
  await c.closeWrite();
  expect(await received).toBe(total);
  const mbps = total / 1e6 / ((performance.now() - t0) / 1000);
  console.log(`tcp loopback (Bun, node:net ByteStream): ${mbps.toFixed(0)} MB/s`);
  c.close();
  await l.close();
}, 60_000);

const SCRIPT = `
import * as fs from "node:fs";
import { openSerial } from ${JSON.stringify(join(import.meta.dir, "../../transport/serial.ts"))};
import { platform } from ${JSON.stringify(join(import.meta.dir, "../../platform/index.ts"))};
import { lacking } from "../helpers/requires.ts";
const [role, mode, path, size] = process.argv.slice(2);
const total = Number(size);
if (role === "r") {
  let n = 0, t0 = 0;
  if (mode === "raw") {
    const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
    const buf = new Uint8Array(65536);
    console.log("ready");
    while (n < total) { const k = fs.readSync(fd, buf); if (!t0) t0 = performance.now(); n += k; }
  } else {
    const s = await openSerial(path, { platform });
    console.log("ready");
    while (n < total) { const c = await s.read(); if (!c) break; if (!t0) t0 = performance.now(); n += c.length; }
    s.close();
  }
  console.log(JSON.stringify({ n, mbps: n / 1e6 / ((performance.now() - t0) / 1000) }));
  process.exit(0);
} else {
  const buf = new Uint8Array(65536).fill(0x5a);
  if (mode === "raw") {
    const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NOCTTY);
    for (let k = 0; k < total; ) k += fs.writeSync(fd, buf, 0, Math.min(buf.length, total - k));
  } else {
    const s = await openSerial(path, { platform });
    for (let k = 0; k < total; k += buf.length) await s.write(buf.subarray(0, Math.min(buf.length, total - k)));
    await s.closeWrite();
    s.close();
  }
}
`;

/** One transfer of `size` bytes from pty end a to end b, writer and reader in two processes. */
async function serialRun(mode: "raw" | "ours", size: number): Promise<number> {
  const script = join(dir, "serial-peer.ts");
  fs.writeFileSync(script, SCRIPT);
  pty = await ptyPair();
  const reader = await platform.spawn([process.execPath, script, "r", mode, pty.b, String(size)], {
    stdin: "ignore",
    stderr: "inherit",
  });
  let out = "";
  while (!out.includes("ready\n"))
    out += new TextDecoder().decode((await reader.stdout!.read()) ?? undefined);
  const writer = await platform.spawn([process.execPath, script, "w", mode, pty.a, String(size)], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
  });
  for (let c = await reader.stdout!.read(); c; c = await reader.stdout!.read())
    out += new TextDecoder().decode(c);
  expect((await writer.exited).code).toBe(0);
  expect((await reader.exited).code).toBe(0);
  await pty.close();
  pty = null;
  const result = JSON.parse(out.split("\n")[1]!) as { n: number; mbps: number };
  expect(result.n).toBe(size);
  return result.mbps;
}

describe.skipIf(lacking(hasSocat() ? null : "socat"))("serial over a pty pair", () => {
  test("our stream against raw blocking fs calls, same pair, same run", async () => {
    const size = 32 * 1024 * 1024;
    const raw: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < 3; i++) {
      raw.push(await serialRun("raw", size));
      ours.push(await serialRun("ours", size));
    }
    const best = (xs: number[]) => Math.max(...xs);
    const ratio = best(ours) / best(raw);
    console.log(
      `serial pty (Bun): raw ${raw.map((x) => x.toFixed(1)).join("/")} MB/s, ours ${ours
        .map((x) => x.toFixed(1))
        .join("/")} MB/s, best-of-3 ratio ${(ratio * 100).toFixed(0)}%`,
    );
    expect(ours.every((x) => x > 0) && raw.every((x) => x > 0)).toBe(true);
  }, 120_000);
});
