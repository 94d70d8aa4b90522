/**
 * A minimal faulty serial line for the chaos suite, until fixtures/line-bridge.ts (frame-aware,
 * being built with the serial fixes) is on main: two socat processes each give a pty (one for
 * the agent's `listen.tty`, one for the host's `pair --serial`) whose bytes go over loopback TCP
 * through the TCP fault proxy, so the same faults (corrupt, drop, duplicate, stall) hit the
 * serial byte stream. "up" is host -> device. The faults are byte-level, not frame-aware: a flip
 * lands in the middle of whatever chunk comes next.
 * Must never: be cut (a closed TCP leg ends socat and both ttys hang up: that is an unplug, not
 * a line fault), or leave socat running (harness cleanup() kills it).
 */
import * as net from "node:net";
import { join } from "node:path";
import { cleanEnv, spawnLogged, tempDir } from "../fixtures/qubes-stubs/harness.ts";
import { TcpFaultProxy } from "./tcp-fault-proxy.ts";

export interface SerialLine {
  readonly agentTty: string;
  readonly hostTty: string;
  readonly proxy: TcpFaultProxy;
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function serialLine(): Promise<SerialLine> {
  const dir = tempDir("qa-chaos-line-");
  const agentTty = join(dir, "agent-tty");
  const hostTty = join(dir, "host-tty");
  const port = await freePort();
  const device = spawnLogged(
    ["socat", "-d", "-d", `pty,raw,echo=0,link=${agentTty}`, `tcp-listen:${port},bind=127.0.0.1,reuseaddr`],
    cleanEnv(),
  );
  await device.waitLine(/listening on/);
  const proxy = await TcpFaultProxy.start(port);
  const host = spawnLogged(
    ["socat", "-d", "-d", `pty,raw,echo=0,link=${hostTty}`, `tcp:127.0.0.1:${proxy.port}`],
    cleanEnv(),
  );
  await host.waitLine(/starting data transfer loop/);
  return {
    agentTty,
    hostTty,
    proxy,
    async close() {
      await proxy.close();
      for (const s of [device, host]) s.proc.kill("SIGTERM");
      await Promise.all([device.exited, host.exited]);
    },
  };
}
