/**
 * Hostile-peer tests, vchan layer: a paired host that speaks valid Noise and then sends vchan
 * messages that break the rules (core/vchan/messages.ts, vchan.ts, channel.ts) to the real
 * agent. Each fault ends that host's session with its fixed ProtocolError code, logged without
 * the attacker's bytes, while another host's session keeps serving calls.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ResetReason, VchanType } from "../../core/vchan/messages.ts";
import { VCHAN_MAX_CHANNELS, VCHAN_MAX_CHUNK, VCHAN_WINDOW_BYTES } from "../../core/wire/limits.ts";
import { cleanup } from "../helpers/agent/harness.ts";
import { callMeta, type Hostile, hostileScene, marker } from "../helpers/hostile-host.ts";

let scene: Awaited<ReturnType<typeof hostileScene>>;

beforeAll(async () => {
  scene = await hostileScene({
    services: { "test.Sleep": "#!/bin/sh\nexec sleep 60\n" },
    policy: { "30-sleep.policy": "test.Sleep * @anyvm @anyvm allow\n" },
  });
});

afterAll(cleanup);

const bytes = (s: string) => new TextEncoder().encode(s);

/** Connects the attacker, runs `attack`, and checks the agent ended its session with `code`. */
async function refused(code: string, attack: (h: Hostile, mark: string) => Promise<unknown>) {
  const { agent, attacker, stillServes, notLogged } = scene;
  const mark = marker();
  const h = await attacker();
  await agent.waitLine(/session-up .*mode=reconnect/);
  await attack(h, mark).catch(() => {}); // our own sends may fail once the agent hangs up
  await agent.waitLine(new RegExp(`session-down .*code=${code}( |$)`));
  expect(await h.c.session.closed).not.toBeUndefined();
  notLogged(mark);
  await stillServes();
}

describe("hostile peer: vchan messages after a valid handshake", () => {
  test("a vchan record shorter than its header ends the session (frame-malformed)", async () => {
    await refused("frame-malformed", (h) => h.rawVchan(Uint8Array.of(VchanType.DATA, 0, 0)));
  });

  test("an unknown vchan message type ends the session (frame-malformed)", async () => {
    await refused("frame-malformed", (h, mark) =>
      h.rawVchan(Uint8Array.of(0x09, 0, 0, 0, 0, ...bytes(mark))),
    );
  });

  test("an empty DATA, a bad RESET reason and a zero CREDIT are malformed", async () => {
    await refused("frame-malformed", (h) => h.rawVchan(Uint8Array.of(VchanType.DATA, 0, 0, 0, 0)));
    await refused("frame-malformed", (h) => h.rawVchan(Uint8Array.of(VchanType.RESET, 0, 0, 0, 0, 9)));
    await refused("frame-malformed", (h) =>
      h.rawVchan(Uint8Array.of(VchanType.CREDIT, 0, 0, 0, 0, 0, 0, 0, 0)),
    );
  });

  test("an unknown session record kind ends the session (unexpected-message)", async () => {
    await refused("unexpected-message", (h, mark) => h.record(Uint8Array.of(0x7f, ...bytes(mark))));
  });

  test("DATA on a channel never opened ends the session (channel-unknown)", async () => {
    await refused("channel-unknown", (h, mark) =>
      h.vchan({ type: VchanType.DATA, id: 1000, data: bytes(mark) }),
    );
  });

  test("an OPEN with a reused or a device-owned id ends the session (channel-unknown)", async () => {
    await refused("channel-unknown", async (h) => {
      h.open(callMeta("test.Sleep"));
      await h.vchan({ type: VchanType.OPEN, id: 0, meta: callMeta("test.Sleep") });
    });
    await refused("channel-unknown", (h) =>
      h.vchan({ type: VchanType.OPEN, id: 7, meta: callMeta("test.Sleep") }),
    );
  });

  test("DATA after EOF, and a second EOF, end the session (channel-state)", async () => {
    await refused("channel-state", async (h, mark) => {
      const ch = h.open(callMeta("test.Sleep"));
      await ch.closeWrite();
      await h.vchan({ type: VchanType.DATA, id: ch.id, data: bytes(mark) });
    });
    await refused("channel-state", async (h) => {
      const ch = h.open(callMeta("test.Sleep"));
      await ch.closeWrite();
      await h.vchan({ type: VchanType.EOF, id: ch.id });
    });
  });

  test("credit beyond the window ends the session (flow-control)", async () => {
    await refused("flow-control", async (h) => {
      const ch = h.open(callMeta("test.Sleep"));
      await h.vchan({ type: VchanType.CREDIT, id: ch.id, bytes: 1 });
    });
  });

  test("data beyond the credit granted ends the session (flow-control)", async () => {
    // test.Sleep never reads its stdin: the agent's pipe and one chunk in flight take a little,
    // then nothing is consumed and no credit comes back. We send 8 windows regardless.
    await refused("flow-control", async (h, mark) => {
      const ch = h.open(callMeta("test.Sleep"));
      const chunk = new Uint8Array(VCHAN_MAX_CHUNK).fill(0x41);
      chunk.set(bytes(mark));
      for (let sent = 0; sent < 8 * VCHAN_WINDOW_BYTES; sent += chunk.length) {
        await h.vchan({ type: VchanType.DATA, id: ch.id, data: chunk });
      }
    });
  });

  test(`an OPEN beyond ${VCHAN_MAX_CHANNELS} channels is reset (LIMIT) and logged; the session and other hosts go on`, async () => {
    const { agent, attacker, stillServes } = scene;
    const h = await attacker({ maxChannels: VCHAN_MAX_CHANNELS + 8 });
    await agent.waitLine(/session-up .*mode=reconnect/);
    // qubes.Filecopy (allowed by the default policy) waits for its stdin: a channel held open by
    // the agent with no process behind it.
    const held = Array.from({ length: VCHAN_MAX_CHANNELS }, () => h.open(callMeta("qubes.Filecopy")));
    const over = h.open(callMeta("qubes.Filecopy"));
    const error = await over.read().then(
      () => null,
      (e) => e,
    );
    expect(error?.reason).toBe(ResetReason.LIMIT);
    await agent.waitLine(/channel-refused .*code=channel-limit/);
    expect(h.c.session.isOpen).toBe(true);
    await stillServes();
    // One channel ended: the attacker may open one again (the cap counts open channels).
    held[0]!.close();
    const again = h.open(callMeta("test.Echo"));
    await again.closeWrite();
    expect(await again.read()).not.toBeNull();
    h.c.session.close();
    await agent.waitLine(/session-down/);
    await stillServes();
  }, 60_000);
});
