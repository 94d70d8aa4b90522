/**
 * Volume through the real agent: 64 MiB through `cat` byte-identical with the agent's peak RSS
 * bounded (nothing buffers a whole stream), and 256 concurrent calls on one session.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { runCall } from "../../calls/caller.ts";
import { encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import type { Connected } from "../../core/session/establish.ts";
import { type AgentProcess, cleanup, DEVICE, startAgent } from "../helpers/agent/harness.ts";
import { hostCall, pairHost, text } from "../helpers/agent/host-side.ts";

const MiB = 1024 * 1024;
/** Peak RSS allowed for the agent after 64 MiB went through it (Bun itself takes ~40-60 MB). */
const RSS_LIMIT_KB = 250 * 1024;

let agent: AgentProcess;
let host: Connected;

beforeAll(async () => {
  agent = await startAgent({
    policy: { "30-test.policy": "test.Cat * @anyvm @anyvm allow\ntest.Hello * @anyvm @anyvm allow\n" },
    services: {
      "test.Cat": "#!/bin/sh\nexec cat\n",
      "test.Hello": '#!/bin/sh\necho "hello $1"\necho "err $1" >&2\nexit $(( $1 % 7 ))\n',
    },
  });
  host = (await pairHost(agent)).c;
});

afterAll(cleanup);

function vmHwmKb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]);
}

describe("volume through the agent", () => {
  test("64 MiB through cat arrive byte-identical; the agent's peak RSS stays bounded", async () => {
    const block = new Uint8Array(MiB);
    for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
    const total = 64;
    const sent = createHash("sha256");
    const received = createHash("sha256");
    let blocks = 0;
    let bytes = 0;
    const channel = host.vchan.open(
      encodeCallRequest({ source: "work", target: DEVICE, service: "test.Cat", arg: "" }),
    );
    const { status } = await runCall(channel, {
      stdin: {
        read: async () => {
          if (blocks === total) return null;
          block[0] = blocks++; // every block differs, so a repeated or dropped block shows
          sent.update(block);
          return block.slice();
        },
      },
      stdout: {
        write: async (d) => {
          received.update(d);
          bytes += d.length;
        },
      },
      stderr: { write: async () => {} },
    });
    expect(status).toBe(0);
    expect(bytes).toBe(total * MiB);
    expect(received.digest("hex")).toBe(sent.digest("hex"));
    const hwm = vmHwmKb(agent.proc.pid);
    console.log(`agent VmHWM after 64 MiB: ${(hwm / 1024).toFixed(0)} MB`);
    expect(hwm).toBeLessThan(RSS_LIMIT_KB);
  }, 60_000);

  test("256 concurrent calls all complete with their own output and status", async () => {
    const results = await Promise.all(
      Array.from({ length: 256 }, (_, i) => hostCall(host, { service: "test.Hello", arg: String(i) })),
    );
    results.forEach((r, i) => {
      expect(text(r.stdout)).toBe(`hello ${i}\n`);
      expect(r.stderr).toBe(`err ${i}\n`);
      expect(r.status).toBe(i % 7);
    });
  }, 60_000);
});
