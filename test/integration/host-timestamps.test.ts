/**
 * The host's IK timestamps against a real agent (issue 9, point 4, host side): with the host's
 * clock far behind its last value (its file says the future), a daemon killed right after its
 * reconnect was accepted restarts above that value and is accepted again; reusing a value (as a
 * daemon that used a value before persisting it would, after a kill) is refused as a replay.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, DEVICE, pairedHost, startDaemon } from "../../fixtures/qubes-stubs/harness.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

describe("IK timestamps across daemon kills, with the clock behind", () => {
  test("a daemon killed right after sending never reuses a value", async () => {
    const { agent, host, daemon } = await pairedHost();
    const file = join(host.state, "ik-timestamp");
    daemon.proc.kill("SIGKILL");
    await daemon.exited;
    // the clock is a year behind the last value used
    const future = BigInt(Date.now() + 365 * 86_400_000) * 1000n;
    writeFileSync(file, `${future}\n`);

    for (let i = 1n; i <= 3n; i++) {
      const d = await startDaemon(host);
      await agent.waitLine(/ session-up .*mode=reconnect/);
      // killed at once: the value it sent is already on disk
      d.proc.kill("SIGKILL");
      await d.exited;
      expect(readFileSync(file, "utf8")).toBe(`${future + i}\n`);
    }

    // what a daemon that used a value before persisting it would do after a kill: the agent
    // refuses it, so the order tested above is what keeps the device reachable
    writeFileSync(file, `${future + 2n}\n`);
    const reused = await startDaemon(host);
    await agent.waitLine(/ refused .*code=handshake-replay/);
    reused.proc.kill("SIGKILL");
    await reused.exited;

    // and from the value actually last used, the device takes it again
    writeFileSync(file, `${future + 3n}\n`);
    const good = await startDaemon(host);
    await good.waitLine(new RegExp(`${DEVICE}: up`));
  });
});
