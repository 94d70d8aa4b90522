import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { hasSocat, type PtyPair, ptyPair } from "../fixtures/pty.ts";
import { platform, SpawnError } from "../platform/index.ts";
import { lacking } from "../test/helpers/requires.ts";
import { settleWithin, streamContract } from "../test/helpers/stream-contract.ts";
import { openSerial, type SerialPlatform, type SpawnFailure } from "./serial.ts";
import { type ByteStream, TransportError } from "./transport.ts";

let pty: PtyPair | null = null;
const newPty = async () => {
  pty = await ptyPair();
  return pty;
};
const cleanup = async () => {
  await pty?.close();
  pty = null;
};

describe.skipIf(lacking(hasSocat() ? null : "socat"))("serial over a pty pair", () => {
  streamContract({
    name: "serial (pty pair)",
    pair: async () => {
      const p = await newPty();
      return Promise.all([openSerial(p.a, { platform }), openSerial(p.b, { platform })]) as Promise<
        [ByteStream, ByteStream]
      >;
    },
    cleanup,
    halfClose: false,
    peerCloseEof: false,
    lineGone: () => pty!.hangup(),
    bulkBytes: 2 * 1024 * 1024,
    // Two pty buffers plus socat's: tens of KiB; a megabyte would mean no backpressure.
    stallBound: 1024 * 1024,
  });

  afterEach(cleanup);

  test("the line is put in raw 8N1 mode", async () => {
    const p = await newPty();
    const s = await openSerial(p.a, { platform });
    const c = await platform.spawn(["stty", "-F", p.a, "-a"], { stdin: "ignore", stderr: "ignore" });
    let text = "";
    for (let x = await c.stdout!.read(); x; x = await c.stdout!.read()) text += new TextDecoder().decode(x);
    await c.exited;
    for (const flag of [
      "-icanon",
      "-echo",
      "-isig",
      "-icrnl",
      "-ixon",
      "-opost",
      "cs8",
      "-parenb",
      "clocal",
    ]) {
      expect(text.split(/\s+/)).toContain(flag);
    }
    s.close();
    await s.closed;
  });

  test("a missing device is a ConfigError that says how to find the right one", async () => {
    const e = await openSerial("/dev/serial/by-id/usb-nothing-here", { platform }).catch((x) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain("/dev/serial/by-id/");
  });

  test("a regular file is refused as not a serial device", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qa-serial-"));
    try {
      writeFileSync(join(dir, "f"), "x");
      expect(await openSerial(join(dir, "f"), { platform }).catch((x) => x)).toBeInstanceOf(ConfigError);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("close then reopen loses no bytes (no read left behind in a thread pool)", async () => {
    const p = await newPty();
    const b = await openSerial(p.b, { platform });
    const first = await openSerial(p.a, { platform });
    // Make sure the first reader is mid-read (its next read pending) when it is closed.
    await b.write(new TextEncoder().encode("warm"));
    expect((await first.read())!.length).toBeGreaterThan(0);
    const pending = first.read();
    first.close();
    expect(await pending).toBeNull();
    await first.closed;
    await b.write(new TextEncoder().encode("after-close"));
    const again = await openSerial(p.a, { platform });
    let text = "";
    while (text.length < 11) text += new TextDecoder().decode((await again.read())!);
    expect(text).toBe("after-close");
    again.close();
    b.close();
    await Promise.all([again.closed, b.closed]);
  });

  test("an idle open line costs no CPU (no busy polling)", async () => {
    const p = await newPty();
    const [a, b] = await Promise.all([openSerial(p.a, { platform }), openSerial(p.b, { platform })]);
    const pending = a.read();
    const before = process.cpuUsage();
    expect(await settleWithin(pending, 500)).toBe("pending");
    const used = process.cpuUsage(before);
    expect((used.user + used.system) / 1000).toBeLessThan(100); // ms of CPU in 500 ms
    a.close();
    b.close();
    await Promise.all([a.closed, b.closed]);
  });

  test("a write the far end never drains fails at its deadline; a reopen neither hangs in stty nor waits for ever; all flows once the far end reads", async () => {
    const p = await newPty();
    const DEADLINE_MS = 300;
    const far = await openSerial(p.b, { platform }); // open, but not read (read-ahead fills, then stops)
    const near = await openSerial(p.a, { platform, writeDeadlineMs: DEADLINE_MS });
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    const chunk = new Uint8Array(64 * 1024).fill(0x55);
    let failed: unknown = null;
    let lastStart = 0;
    for (let i = 0; i < 1000 && failed === null; i++) {
      lastStart = performance.now();
      await near.write(chunk).catch((e) => {
        failed = e;
      });
    }
    const blockedMs = performance.now() - lastStart;
    const ticksWhileBlocked = ticks;
    expect(failed).toBeInstanceOf(TransportError);
    expect((failed as TransportError).code).toBe("write-timeout");
    expect(blockedMs).toBeGreaterThanOrEqual(DEADLINE_MS - 5);
    expect(blockedMs).toBeLessThan(DEADLINE_MS + 3000); // a deadline, not for ever (loaded machine)
    expect(ticksWhileBlocked).toBeGreaterThan(0); // the event loop ran while the write was stuck
    // The stream stays failed: later writes are refused at once.
    expect(await settleWithin(near.write(chunk), 50)).toBe("rejected");
    near.close();
    // Reopening the line while our stuck write still sits in it: stty must not wait for the
    // output to drain (tcsetattr TCSADRAIN would, for as long as the far end does not read).
    const t = performance.now();
    const again = await openSerial(p.a, { platform, writeDeadlineMs: DEADLINE_MS });
    expect(performance.now() - t).toBeLessThan(3000);
    // Its write waits for the stuck one under its own deadline, then fails; it never hangs.
    const w = await again.write(new TextEncoder().encode("x")).catch((e) => e);
    expect(w).toBeInstanceOf(TransportError);
    expect((w as TransportError).code).toBe("write-timeout");
    again.close();
    // The far end reads again: the stuck write finishes, and a fresh stream's bytes follow.
    const fresh = await openSerial(p.a, { platform });
    const marker = "after-the-stall";
    const sent = fresh.write(new TextEncoder().encode(marker));
    let tail = "";
    while (!tail.endsWith(marker)) {
      const c = await far.read();
      if (c === null) break;
      tail = (tail + new TextDecoder().decode(c)).slice(-64);
    }
    await sent;
    clearInterval(ticker);
    expect(tail.endsWith(marker)).toBe(true);
    fresh.close();
    far.close();
    await Promise.all([near.closed, again.closed, fresh.closed, far.closed]);
  }, 60_000);

  test("opening never makes the line our controlling terminal (O_NOCTTY)", async () => {
    // A systemd service is a session leader: without O_NOCTTY its first tty open would become
    // its controlling terminal, and pulling the cable would SIGHUP it.
    const p = await newPty();
    const dir = mkdtempSync(join(tmpdir(), "qa-noctty-"));
    try {
      const script = join(dir, "open.ts");
      writeFileSync(
        script,
        `import { openSerial } from ${JSON.stringify(join(import.meta.dir, "serial.ts"))};
         import { platform } from ${JSON.stringify(join(import.meta.dir, "../platform/index.ts"))};
         import { readFileSync } from "node:fs";
         const s = await openSerial(process.argv[2], { platform });
         const r = s.read();
         const stat = readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ");
         console.log(JSON.stringify({ sid: Number(stat[3]), pid: process.pid, ttyNr: Number(stat[4]) }));
         s.close(); await r;`,
      );
      const c = await platform.spawn(["setsid", "-w", process.execPath, script, p.a], { stdin: "ignore" });
      let out = "";
      for (let x = await c.stdout!.read(); x; x = await c.stdout!.read()) out += new TextDecoder().decode(x);
      expect((await c.exited).code).toBe(0);
      const r = JSON.parse(out);
      expect(r.sid).toBe(r.pid); // it really was a session leader
      expect(r.ttyNr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe("the runtime comes in as SerialPlatform (transport/ never imports platform/)", () => {
  // A character device whose stty cannot start: the failure must read as the same ConfigError
  // whatever runtime raised it, matched by SpawnError's spawnFailed field, not by its class.
  const noStty = (error: unknown): SerialPlatform => ({
    stat: async () => ({ isCharDevice: true }),
    spawn: () => Promise.reject(error),
    openTtyReader: () => Promise.reject(new Error("not reached")),
  });

  test("platform's Platform is a SerialPlatform, and its SpawnError a SpawnFailure", () => {
    const p: SerialPlatform = platform;
    const f: SpawnFailure = new SpawnError("cannot start stty: ENOENT", "ENOENT");
    expect(p).toBe(platform);
    expect(f.spawnFailed).toBe(true);
  });

  test("stty that cannot start is a ConfigError naming the errno and the fix", async () => {
    const e = await openSerial("/dev/ttyACM0", {
      platform: noStty(new SpawnError("cannot start stty: ENOENT", "ENOENT")),
    }).catch((x) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe("cannot run stty (ENOENT): install coreutils");
  });

  test("any other spawn rejection is passed on unchanged (a bug, not the operator's fault)", async () => {
    const bug = new TypeError("bad argv");
    expect(await openSerial("/dev/ttyACM0", { platform: noStty(bug) }).catch((x) => x)).toBe(bug);
  });
});
