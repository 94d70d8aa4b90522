/**
 * Hostile-peer tests, handshake: an unpaired host key, garbage instead of a handshake, and a
 * byte-exact replay of a paired host's IK message 1 (before and after an agent restart). Each is
 * refused with its fixed code and logged without the attacker's bytes, and the paired host is
 * still served.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import { cleanup, startAgent } from "../helpers/agent/harness.ts";
import { connectHost, hostCall, text } from "../helpers/agent/host-side.ts";
import { connectHostile, ECHO_SERVICE, hostileScene, marker, sendRawTcp } from "../helpers/hostile-host.ts";

let scene: Awaited<ReturnType<typeof hostileScene>>;

beforeAll(async () => {
  scene = await hostileScene();
});

afterAll(cleanup);

describe("hostile peer: handshakes", () => {
  test("an unpaired host key (IK from an unknown static key) is refused (handshake-unknown-key)", async () => {
    const { agent, bad, stillServes } = scene;
    const stranger = connectHostile(agent.port, {
      mode: "reconnect",
      hostKey: generateStaticKeyPair(),
      deviceKey: bad.deviceKey,
    });
    await expect(stranger).rejects.toThrow();
    await agent.waitLine(/refused .*code=handshake-unknown-key/);
    await stillServes();
  });

  test("a pairing attempt while pairing is closed (no token) is refused (handshake-psk)", async () => {
    const { agent, stillServes } = scene;
    const token = new Uint8Array(32).fill(7);
    const guess = connectHostile(agent.port, { mode: "pair-psk", hostKey: generateStaticKeyPair(), token });
    await expect(guess).rejects.toThrow();
    await agent.waitLine(/refused .*code=handshake-psk/);
    await stillServes();
  });

  test("garbage instead of a handshake is refused and not logged", async () => {
    const { agent, stillServes, notLogged } = scene;
    const mark = marker();
    const garbage = new TextEncoder().encode(`${mark}`.repeat(50));
    await sendRawTcp(agent.port, Uint8Array.of(0, garbage.length, ...garbage));
    await agent.waitLine(/refused .*code=(handshake|frame|suite)-/);
    notLogged(mark);
    await stillServes();
  });

  test("a byte-exact replay of IK message 1 is refused (handshake-replay), also after a restart", async () => {
    const { agent, bad, good, attacker } = scene;
    const h = await attacker();
    await agent.waitLine(/session-up .*mode=reconnect/);
    const recorded = h.handshakeBytes;
    h.c.session.close();
    await agent.waitLine(/session-down/);

    await sendRawTcp(agent.port, recorded);
    await agent.waitLine(/refused .*code=handshake-replay/);
    await scene.stillServes();

    agent.proc.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
    const restarted = await startAgent({
      dir: agent.dir,
      services: { "test.Echo": ECHO_SERVICE },
      policy: { "20-echo.policy": "test.Echo * @anyvm @anyvm allow\n" },
    });
    await sendRawTcp(restarted.port, recorded);
    await restarted.waitLine(/refused .*code=handshake-replay/);
    // The replayed key's owner and the other host both come back.
    for (const hostKey of [good.hostKey, bad.hostKey]) {
      const c = await connectHost(restarted.port, { mode: "reconnect", hostKey, deviceKey: bad.deviceKey });
      const r = await hostCall(c, { service: "test.Echo" }, "back");
      expect(text(r.stdout)).toBe("echo:back");
      c.session.close();
    }
  }, 60_000);
});
