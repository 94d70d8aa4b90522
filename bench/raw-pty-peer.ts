/**
 * The raw pty ceiling for bench/run.ts: bytes written into one end of a socat pty pair and read
 * from the other with plain blocking node:fs, after `stty raw -echo`, no framing, no crypto.
 *
 *   --role reader --tty PATH --seconds S
 *       prints {"event":"ready"}, then counts bytes from the first byte for S seconds and prints
 *       {"event":"done",bytes,seconds,mbPerSecond} (steady-state rate); exits.
 *   --role writer --tty PATH
 *       writes one reused 64 KiB block forever (blocking writes: backpressure from the line);
 *       the bench kills it once the reader is done.
 *   --via serial (both roles): the same, but through transport/serial.ts (openSerial: stty, the
 *       platform's tty reader, blocking writes in the thread pool) instead of plain node:fs, with
 *       writes of one serial frame's size; no framing, no crypto. Isolates what the transport
 *       costs from what framing and crypto cost (bench/README.md "Where the time goes").
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    role: { type: "string" },
    tty: { type: "string" },
    seconds: { type: "string" },
    via: { type: "string" },
  },
});
const emit = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const tty = a.tty!;

const stty = spawnSync("stty", ["-F", tty, "raw", "-echo"], { stdio: ["ignore", "ignore", "pipe"] });
if (stty.status !== 0) {
  process.stderr.write(`stty -F ${tty} raw -echo failed: ${stty.stderr}\n`);
  process.exit(2);
}

if (a.via === "serial") {
  const { openSerial } = await import("../transport/serial.ts");
  const { platform } = await import("../platform/index.ts");
  const stream = await openSerial(tty, { platform });
  if (a.role === "reader") {
    emit({ event: "ready" });
    const limitMs = Number(a.seconds ?? 1) * 1000;
    let bytes = 0;
    let reads = 0;
    let t0 = 0;
    let now = 0;
    for (let c = await stream.read(); c; c = await stream.read()) {
      now = performance.now();
      if (t0 === 0) {
        t0 = now;
        continue;
      }
      bytes += c.length;
      reads++;
      if (now - t0 >= limitMs) break;
    }
    const seconds = (now - t0) / 1000;
    const mbPerSecond = seconds > 0 ? bytes / seconds / 1e6 : 0;
    emit({ event: "done", ok: bytes > 0, bytes, reads, seconds, mbPerSecond });
    process.exit(0);
  }
  // One COBS-encoded 16 KiB serial frame is about this long.
  const block = new Uint8Array(16 * 1024 + 100).map((_, i) => 1 + (i % 255));
  emit({ event: "writing" });
  try {
    for (;;) await stream.write(block);
  } catch {
    process.exit(0);
  }
} else if (a.role === "reader") {
  const fd = fs.openSync(tty, fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
  const buf = new Uint8Array(1 << 16);
  emit({ event: "ready" });
  const limitMs = Number(a.seconds ?? 1) * 1000;
  let bytes = 0;
  let reads = 0;
  let t0 = 0;
  let now = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n <= 0) break;
    now = performance.now();
    if (t0 === 0) {
      t0 = now; // the first read only starts the clock
      continue;
    }
    bytes += n;
    reads++;
    if (now - t0 >= limitMs) break;
  }
  const seconds = (now - t0) / 1000;
  const mbPerSecond = seconds > 0 ? bytes / seconds / 1e6 : 0;
  emit({ event: "done", ok: bytes > 0, bytes, reads, seconds, mbPerSecond });
  process.exit(0);
} else {
  const fd = fs.openSync(tty, fs.constants.O_WRONLY | fs.constants.O_NOCTTY);
  const block = new Uint8Array(1 << 16);
  for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
  emit({ event: "writing" });
  try {
    for (;;) fs.writeSync(fd, block);
  } catch {
    process.exit(0); // the line went away (EIO): the run is over
  }
}
