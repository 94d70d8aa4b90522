/**
 * "The same agent code runs as a Node bundle": transport/ and platform/ built with
 * `bun build --target=node` (as for the USB Armory) and run on Node, talking TCP and serial to
 * this Bun process, plus the platform checks under Node (test/integration/node-platform-peer.ts).
 */

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hasSocat, type PtyPair, ptyPair } from "../../fixtures/pty.ts";
import { platform } from "../../platform/index.ts";
import type { ChildProcess } from "../../platform/platform.ts";
import { openSerial } from "../../transport/serial.ts";
import { tcpConnect } from "../../transport/tcp.ts";
import type { ByteSource, ByteStream } from "../../transport/transport.ts";
import { lacking } from "../helpers/requires.ts";

const NODE = Bun.which("node");
const dir = fs.mkdtempSync(join(tmpdir(), "qa-node-platform-"));
const bundle = join(dir, "peer.mjs");
let children: ChildProcess[] = [];
let pty: PtyPair | null = null;

afterEach(async () => {
  for (const c of children) c.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  children = [];
  await pty?.close();
  pty = null;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Reads JSON lines from a child's stdout. */
function lines(out: ByteSource) {
  let buf = "";
  return async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return JSON.parse(line);
      }
      const c = await out.read();
      if (!c) throw new Error(`node peer ended; partial output: ${buf}`);
      buf += new TextDecoder().decode(c);
    }
  };
}

async function startPeer(...args: string[]) {
  const c = await platform.spawn([NODE!, bundle, ...args], { stdin: "ignore", stderr: "inherit" });
  children.push(c);
  return { child: c, next: lines(c.stdout!) };
}

/** Sends `n` random bytes and checks the same bytes come back, concurrently. */
async function roundTrip(s: ByteStream, n: number): Promise<void> {
  const data = randomBytes(n);
  const back = (async () => {
    const h = createHash("sha256");
    let got = 0;
    while (got < n) {
      const c = await s.read();
      if (!c) break;
      h.update(c);
      got += c.length;
    }
    return { got, sha: h.digest("hex") };
  })();
  for (let i = 0; i < n; i += 65536) await s.write(data.subarray(i, i + 65536));
  expect(await back).toEqual({ got: n, sha: createHash("sha256").update(data).digest("hex") });
}

describe.skipIf(lacking(NODE ? null : "node"))("the transport and platform code as a Node bundle", () => {
  beforeAll(async () => {
    const b = await platform.spawn(
      [
        process.execPath,
        "build",
        "--target=node",
        "--format=esm",
        join(import.meta.dir, "node-platform-peer.ts"),
        "--outfile",
        bundle,
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "inherit" },
    );
    expect((await b.exited).code).toBe(0);
  }, 60_000);

  test("platform checks pass under Node", async () => {
    const work = fs.mkdtempSync(join(dir, "check-"));
    const peer = await startPeer("selfcheck", work);
    const { results } = (await peer.next()) as { results: Record<string, unknown> };
    expect(results.runtime).toMatchObject({ platform: "node", bun: false });
    expect(results.catRoundTrip).toBe(true);
    expect(results.signalStatus).toBe(143);
    expect(results.missingProgram).toBe("SpawnError ENOENT");
    expect(results.atomicWrite).toEqual(["two", "640", 1]);
    expect(results.unixHalfClose).toBe("over unix");
    if (hasSocat()) {
      const serial = results.serialReopen as { text: string; idleCpuMs: number };
      expect(serial.text).toBe("after-close");
      expect(serial.idleCpuMs).toBeLessThan(100);
    }
    expect((await peer.child.exited).code).toBe(0);
  }, 30_000);

  test("TCP: Bun client, Node echo server, with half-close", async () => {
    const peer = await startPeer("echo-tcp");
    const { port } = (await peer.next()) as { port: number };
    const s = await tcpConnect("127.0.0.1", port);
    await roundTrip(s, 8 * 1024 * 1024);
    await s.closeWrite();
    expect(await s.read()).toBeNull(); // the echo server saw our EOF and sent its own
    s.close();
  }, 30_000);

  test.skipIf(lacking(hasSocat() ? null : "socat"))(
    "serial: Bun on one end of a pty pair, Node echoing on the other",
    async () => {
      pty = await ptyPair();
      const peer = await startPeer("echo-serial", pty.a);
      expect(await peer.next()).toEqual({ ready: true });
      const s = await openSerial(pty.b, { platform });
      await roundTrip(s, 1024 * 1024);
      s.close();
      await pty.hangup(); // the line goes away: Node reads EOF (EIO) and finishes cleanly
      expect(await peer.next()).toEqual({ eof: true });
      expect((await peer.child.exited).code).toBe(0);
    },
    30_000,
  );
});
