/**
 * Calls from a device into Qubes: the daemon runs `qrexec-client-vm --source-qube=<RemoteVM>
 * -- TARGET SERVICE+ARG` (the stub on PATH records it and runs a local script), streams stdin,
 * stdout, stderr and the exit code, and never lets the device choose its source name.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCall } from "../../calls/caller.ts";
import { makeResolver } from "../../core/noise/suites.ts";
import { encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import { systemClock } from "../../core/session/duplex.ts";
import { type Connected, connectAsResponder } from "../../core/session/establish.ts";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import { TcpRecordLink } from "../../core/session/tcp-record-link.ts";
import {
  cleanup,
  cli,
  DEVICE,
  makeHost,
  pairedHost,
  ROOT,
  run,
  startDaemon,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";
import { nativeCiphers } from "../../platform/native-aead.ts";
import { rankLinkSuites } from "../../platform/suite-ranking.ts";
import { tcpListen } from "../../transport/tcp.ts";

setDefaultTimeout(30_000);

afterEach(cleanup);

/** The Qubes side: scripts the qrexec-client-vm stub runs, its log, and its policy. */
function qubesSide() {
  const dir = tempDir("qa-qubes-");
  const rpc = join(dir, "rpc");
  mkdirSync(rpc);
  writeFileSync(
    join(rpc, "test.In"),
    '#!/bin/sh\necho "in: source=$QREXEC_REMOTE_DOMAIN arg=$1"\ncat\necho "to stderr" >&2\nexit 4\n',
  );
  chmodSync(join(rpc, "test.In"), 0o755);
  writeFileSync(join(dir, "policy"), "test.Secret * deny\n");
  const log = join(dir, "calls.log");
  return {
    log,
    env: { QREXEC_STUB_DIR: rpc, QREXEC_STUB_LOG: log, QREXEC_STUB_POLICY: join(dir, "policy") },
  };
}

describe("device -> Qubes", () => {
  test("the agent's call reaches qrexec-client-vm with --source-qube=<RemoteVM>; streams and exit codes pass", async () => {
    const qubes = qubesSide();
    const { agent } = await pairedHost({ host: makeHost(qubes.env), daemonArgs: ["--no-register"] });
    const agentCli = (args: string[], stdin?: string) =>
      run(
        [process.execPath, join(ROOT, "agent/main.ts"), "call", "--config", agent.configPath, ...args],
        { PATH: process.env.PATH! },
        stdin,
      );
    const ok = await agentCli(["work", "test.In+a1"], "payload\n");
    expect([ok.code, ok.stdout, ok.stderr]).toEqual([
      4,
      `in: source=${DEVICE} arg=a1\npayload\n`,
      "to stderr\n",
    ]);
    const denied = await agentCli(["work", "test.Secret"]);
    expect(denied.code).toBe(126);
    expect(denied.stderr).toContain("Request refused");
    const missing = await agentCli(["@default", "test.Nothing"]);
    expect(missing.code).toBe(127);
    expect(readFileSync(qubes.log, "utf8")).toBe(
      `source=${DEVICE} target=work service=test.In arg=a1\n` +
        `source=${DEVICE} target=work service=test.Secret arg=\n` +
        `source=${DEVICE} target=@default service=test.Nothing arg=\n`,
    );
  });

  test("the source a device puts in its request is ignored: the registry name is used", async () => {
    const qubes = qubesSide();
    const host = makeHost(qubes.env);
    const daemon = await startDaemon(host, ["--no-register"]);
    // A device built from the core modules that lies about who is calling.
    const resolver = makeResolver(nativeCiphers());
    const token = randomBytes(32);
    let resolveSession!: (c: Connected) => void;
    const session = new Promise<Connected>((r) => (resolveSession = r));
    const listener = await tcpListen("127.0.0.1", 0, (stream) => {
      connectAsResponder(
        {
          link: new TcpRecordLink(stream),
          resolver,
          staticKey: generateStaticKeyPair(),
          version: "liar-1",
          suites: rankLinkSuites(resolver),
          peers: { isPinned: () => true, acceptTimestamp: () => true },
          pairing: { token },
        },
        { clock: systemClock, onOpen: (ch) => ch.close() },
      ).then(resolveSession, () => stream.close());
    });
    try {
      const paired = await cli(host, [
        "pair",
        "liar",
        "--tcp",
        `127.0.0.1:${listener.port}`,
        "--token",
        token.toString("hex"),
      ]);
      expect(paired.code).toBe(0);
      const c = await session;
      await daemon.waitLine(/liar: up/);
      const channel = c.vchan.open(
        encodeCallRequest({ source: "dom0", target: "work", service: "test.In", arg: "forged" }),
      );
      const out: Uint8Array[] = [];
      const { status } = await runCall(channel, {
        stdin: { read: async () => null },
        stdout: { write: async (d) => void out.push(d.slice()) },
        stderr: { write: async () => {} },
      });
      expect(status).toBe(4);
      expect(Buffer.concat(out).toString()).toBe("in: source=liar arg=forged\n");
      expect(readFileSync(qubes.log, "utf8")).toBe("source=liar target=work service=test.In arg=forged\n");
      // A malformed request resets the channel without running anything.
      const bad = c.vchan.open(new Uint8Array([0xa0]));
      await expect(bad.read()).rejects.toThrow("channel reset");
      await daemon.waitLine(/liar: refused a malformed call request/);
    } finally {
      // The daemon would reconnect (the fake device accepts anything), and a listener closes
      // only once its connections are gone: stop the daemon first.
      daemon.proc.kill("SIGKILL");
      await daemon.exited;
      await listener.close();
    }
  });
});
