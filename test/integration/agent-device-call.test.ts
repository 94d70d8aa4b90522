/**
 * Calls from the device into Qubes: the real `qubes-air-agent call` client, through the agent's
 * local socket and the session, reaches the host side played by this test, which answers with a
 * real process. Also: not connected -> 125, refused -> 126, and an agent killed mid-call gives
 * the caller 125 at once (host side and device side).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { finishCall } from "../../calls/callee.ts";
import { runCallProcess } from "../../calls/callee-process.ts";
import { runCall } from "../../calls/caller.ts";
import {
  type CallRequest,
  decodeCallRequest,
  EXIT_REFUSED,
  encodeCallRequest,
} from "../../core/qrexec/call-protocol.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { platform } from "../../platform/index.ts";
import { cleanup, DEVICE, runCli, spawnAgentCli, startAgent } from "../helpers/agent/harness.ts";
import { pairHost } from "../helpers/agent/host-side.ts";

afterEach(cleanup);

const enc = (s: string) => new TextEncoder().encode(s);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("calls from the device into Qubes", () => {
  test("the call client reaches the host side; stdin, stdout, stderr and the status pass intact", async () => {
    const agent = await startAgent();
    const seen: CallRequest[] = [];
    await pairHost(agent, (channel, meta) => {
      const request = decodeCallRequest(meta);
      seen.push(request);
      if (request.service === "test.Refused") return void finishCall(channel, EXIT_REFUSED);
      const script = 'tr a-z A-Z; echo "err $1" >&2; exit 3';
      void runCallProcess(channel, () => platform.spawn(["/bin/sh", "-c", script, "sh", request.arg]));
    });
    const r = await runCli(
      ["call", "--socket", agent.socket, "--", "work", "my.Service+arg1"],
      {},
      enc("hello\n"),
    );
    expect([r.code, r.stdout, r.stderr]).toEqual([3, "HELLO\n", "err arg1\n"]);
    expect(seen[0]).toEqual({ source: DEVICE, target: "work", service: "my.Service", arg: "arg1" });
    await agent.waitLine(/call-out target=work service=my.Service\+arg1/);

    const viaConfig = await runCli(["call", "--config", agent.configPath, "$dispvm", "my.Service"]);
    expect(viaConfig.code).toBe(3);
    expect(seen[1]).toEqual({ source: DEVICE, target: "@dispvm", service: "my.Service", arg: "" });

    const refused = await runCli(["call", "--socket", agent.socket, "work", "test.Refused"]);
    expect([refused.code, refused.stderr]).toEqual([126, "Request refused\n"]);
  });

  test("without a session the client says so and exits 125; without an agent too", async () => {
    const agent = await startAgent();
    const r = await runCli(["call", "--socket", agent.socket, "work", "my.Service"]);
    expect([r.code, r.stderr]).toEqual([125, "qubes-air-agent: not connected to sys-remote\n"]);
    const none = await runCli(["call", "--socket", `${agent.dir}/nobody.sock`, "work", "my.Service"]);
    expect(none.code).toBe(125);
    expect(none.stderr).toContain("the agent is not running");
  });

  test("invalid names are usage errors (exit 2) and never reach the agent", async () => {
    const agent = await startAgent();
    for (const args of [["bad name", "my.Service"], ["work", "my/Service"], ["work"]]) {
      const r = await runCli(["call", "--socket", agent.socket, "--", ...args]);
      expect(r.code).toBe(2);
    }
    expect(agent.lines.some((l) => l.includes("call-out"))).toBe(false);
  });

  test("the agent killed mid-call: the host's caller gets 125 at once", async () => {
    const agent = await startAgent({
      policy: { "30-test.policy": "test.Hold * @anyvm @anyvm allow\n" },
      services: { "test.Hold": "#!/bin/sh\necho started\nexec cat\n" },
    });
    const { c } = await pairHost(agent);
    const channel = c.vchan.open(
      encodeCallRequest({ source: "work", target: DEVICE, service: "test.Hold", arg: "" }),
    );
    let killedAt = 0;
    const { status } = await runCall(channel, {
      stdin: { read: () => new Promise<Uint8Array | null>(() => {}) }, // stays open
      stdout: {
        write: async () => {
          if (killedAt) return;
          killedAt = performance.now();
          agent.proc.kill("SIGKILL");
        },
      },
      stderr: { write: async () => {} },
    });
    expect(status).toBe(125);
    expect(performance.now() - killedAt).toBeLessThan(2000);
  });

  test("a client that sends stdin and closes while the exit status is in flight still gets the status", async () => {
    // The host side answers at once and never reads stdin, so the client's 8 MiB are still
    // being written (the agent's end of the socket holds unread bytes) when the status comes
    // back. Closing the socket then would reset the client's connection and lose the status:
    // the agent's bridge must read and drop the rest of stdin first (calls/socket-bridge.ts).
    const agent = await startAgent();
    await pairHost(agent, (channel) => void finishCall(channel, 5, "done early\n"));
    const stdin = new Uint8Array(8 * 1024 * 1024).fill(0x61);
    for (let round = 0; round < 3; round++) {
      const r = await runCli(["call", "--socket", agent.socket, "work", "test.Early"], {}, stdin);
      expect([r.code, r.stdout, r.stderr]).toEqual([5, "", "done early\n"]);
    }
  }, 60_000);

  // (A killed client alone is not this case: its socket's EOF reads as the end of stdin, as a
  // half-close would, so the call goes on until the process writes, as with qrexec.)
  for (const what of ["the agent"] as const) {
    test(`${what} killed while the host-side process is silent and its stdin at EOF: that process is stopped`, async () => {
      // The host runs a call from the device as a process (qrexec-client-vm). One that neither
      // reads (stdin already at EOF) nor writes is only stopped if runCallProcess watches the
      // channel itself: else a device could leave such processes behind on sys-remote.
      const agent = await startAgent();
      let child: { pid: number } | null = null;
      let stdinEnded!: () => void;
      const running = new Promise<void>((r) => (stdinEnded = r));
      let ended!: (status: number) => void;
      const done = new Promise<number>((r) => (ended = r));
      await pairHost(agent, (channel: Channel) => {
        // The same channel, telling the test when the caller's stdin reached its end.
        const watched = {
          read: async () => {
            const chunk = await channel.read();
            if (chunk === null) stdinEnded();
            return chunk;
          },
          write: (b: Uint8Array) => channel.write(b),
          closeWrite: () => channel.closeWrite(),
          close: () => channel.close(),
          closed: channel.closed,
        };
        void runCallProcess(watched, async () => {
          const p = await platform.spawn(["sleep", "600"]);
          child = p;
          return p;
        }).then(ended);
      });
      const client = await spawnAgentCli(["call", "--socket", agent.socket, "work", "test.Silent"]);
      await running;
      const pid = child!.pid;
      expect(alive(pid)).toBe(true);
      agent.proc.kill("SIGKILL");
      expect(await done).toBe(125); // runCallProcess returned: the process has exited
      expect(alive(pid)).toBe(false);
      await client.exited;
    });
  }

  test("the agent killed mid-call: the device-side client gets 125 at once", async () => {
    const agent = await startAgent();
    let opened!: () => void;
    const held = new Promise<void>((r) => (opened = r));
    await pairHost(agent, (channel: Channel) => {
      void channel.write(new Uint8Array([1, 0, 0, 0, 3, 0x61, 0x62, 0x0a])); // STDOUT "ab\n", no exit yet
      opened();
    });
    const client = await spawnAgentCli(["call", "--socket", agent.socket, "work", "test.Hold"]);
    await held;
    const killedAt = performance.now();
    agent.proc.kill("SIGKILL");
    const { code } = await client.exited;
    expect(code).toBe(125);
    expect(performance.now() - killedAt).toBeLessThan(2000);
  });
});
