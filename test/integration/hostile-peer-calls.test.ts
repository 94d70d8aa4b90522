/**
 * Hostile-peer tests, call layer: a paired host that opens call channels with malformed,
 * oversized or refused requests (core/qrexec/call-protocol.ts, agent/services/serve-call.ts).
 * Each is refused on its channel (reset REFUSED, or exit 126), logged by fixed code without the
 * attacker's bytes, nothing runs, and the session and other hosts go on being served.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REFUSED_CALLS_LOGGED } from "../../agent/link/sessions.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { ResetReason } from "../../core/vchan/messages.ts";
import { encodeCbor } from "../../core/wire/cbor.ts";
import { VCHAN_MAX_CHUNK } from "../../core/wire/limits.ts";
import { cleanup, DEVICE, makeDir } from "../helpers/agent/harness.ts";
import { hostCall } from "../helpers/agent/host-side.ts";
import { callMeta, type Hostile, hostileScene, marker } from "../helpers/hostile-host.ts";

let scene: Awaited<ReturnType<typeof hostileScene>>;
let h: Hostile;
let touched: string;

beforeAll(async () => {
  const dir = makeDir();
  touched = join(dir, "denied-ran");
  scene = await hostileScene({
    dir,
    services: {
      "test.Denied": `#!/bin/sh\ntouch ${touched}\n`,
      "test.Silent": "#!/bin/sh\nexec sleep 600\n",
    },
    policy: {
      "30-test.policy": "test.Denied * @anyvm @anyvm deny\ntest.Silent * @anyvm @anyvm allow\n",
    },
  });
  h = await scene.attacker();
  await scene.agent.waitLine(/session-up .*mode=reconnect/);
});

afterAll(cleanup);

const bytes = (s: string) => new TextEncoder().encode(s);

async function resetReason(ch: Channel): Promise<number | undefined> {
  const e = await ch.read().then(
    () => null,
    (error) => error,
  );
  return e?.reason;
}

/** Opens a call with `meta`; the agent resets it REFUSED and logs call-refused code=schema. */
let refusedInSession = 0;
async function refusedRequest(meta: Uint8Array, mark: string) {
  const { agent, notLogged, stillServes } = scene;
  // A session gets REFUSED_CALLS_LOGGED lines (the rest only counted): each check its own line.
  if (refusedInSession === REFUSED_CALLS_LOGGED) {
    h.c.session.close();
    await agent.waitLine(/session-down/);
    h = await scene.attacker();
    await agent.waitLine(/session-up .*mode=reconnect/);
    refusedInSession = 0;
  }
  refusedInSession++;
  expect(await resetReason(h.open(meta))).toBe(ResetReason.REFUSED);
  await agent.waitLine(/call-refused code=schema$/);
  notLogged(mark);
  expect(h.c.session.isOpen).toBe(true);
  expect((await hostCall(h.c, { service: "test.Echo" }, "x")).status).toBe(0); // same session
  await stillServes();
}

describe("hostile peer: call requests", () => {
  test("call metadata that is not CBOR is refused (schema)", async () => {
    const mark = marker();
    await refusedRequest(bytes(mark), mark);
  });

  test("CBOR nested beyond the depth limit is refused (schema), not parsed to the end", async () => {
    const mark = marker();
    await refusedRequest(
      Uint8Array.of(...new Array(5000).fill(0x81), 0x60 + mark.length, ...bytes(mark)),
      mark,
    );
  });

  test("a request with an extra field, or a wrong version, is refused (schema)", async () => {
    const mark = marker();
    const base = { v: 1, source: "work", target: DEVICE, service: "test.Echo", arg: "" };
    await refusedRequest(encodeCbor({ ...base, extra: mark }), mark);
    await refusedRequest(encodeCbor({ ...base, v: 2, arg: mark }), mark);
  });

  test("invalid qrexec names in any field are refused (schema)", async () => {
    const mark = marker();
    for (const bad of [
      { source: `../${mark}`, target: DEVICE, service: "test.Echo", arg: "" },
      { source: "work", target: `${mark}\n`, service: "test.Echo", arg: "" },
      { source: "work", target: DEVICE, service: `test/${mark}`, arg: "" },
      { source: "work", target: DEVICE, service: "test.Echo", arg: `${mark} x` },
      { source: "work", target: DEVICE, service: "", arg: mark },
    ]) {
      await refusedRequest(encodeCbor({ v: 1, ...bad }), mark);
    }
  });

  test("an oversized argument (service+arg over 65000 bytes) is refused (schema)", async () => {
    const mark = marker();
    const arg = mark + "a".repeat(65_000);
    const meta = encodeCbor({ v: 1, source: "work", target: DEVICE, service: "test.Echo", arg });
    expect(meta.length).toBeLessThanOrEqual(VCHAN_MAX_CHUNK);
    await refusedRequest(meta, mark);
  });

  test("a call the device policy denies exits 126, is logged, and runs nothing", async () => {
    const r = await hostCall(h.c, { service: "test.Denied", arg: "x" }, "stdin");
    expect(r.status).toBe(126);
    await scene.agent.waitLine(/call source=work service=test.Denied\+x decision=deny .*status=126/);
    expect(existsSync(touched)).toBe(false);
    await scene.stillServes();
  });

  test("a call for another device exits 126 (wrong-target) and runs nothing", async () => {
    const r = await hostCall(h.c, { service: "test.Denied", target: "other-device" });
    expect(r.status).toBe(126);
    await scene.agent.waitLine(/call source=work service=test.Denied\+ decision=deny reason=wrong-target/);
    expect(existsSync(touched)).toBe(false);
  });

  test("services of a session that ends are stopped, even silent ones that read nothing", async () => {
    const { agent, attacker, stillServes } = scene;
    const calls = [0, 1, 2].map(() => h.open(callMeta("test.Silent")));
    for (const ch of calls) await ch.closeWrite(); // stdin done: the service has nothing to read
    h.c.session.close();
    await agent.waitLine(/session-down/);
    // runCallProcess logs the call once its process has exited (125: the channel was gone).
    for (const _ of calls) await agent.waitLine(/call source=work service=test.Silent\+ .*status=125/);
    await stillServes();
    h = await attacker();
    await agent.waitLine(/session-up .*mode=reconnect/);
  }, 30_000);

  test("malformed requests without end: a few call-refused lines per session, then only the count at session-down", async () => {
    const { agent, attacker, stillServes } = scene;
    h.c.session.close(); // a fresh session: its own count
    await agent.waitLine(/session-down/);
    h = await attacker();
    await agent.waitLine(/session-up .*mode=reconnect/);
    const from = agent.lines.length;
    const N = 3 * REFUSED_CALLS_LOGGED;
    const opened = Array.from({ length: N }, () => h.open(Uint8Array.of(0xff)));
    for (const ch of opened) expect(await resetReason(ch)).toBe(ResetReason.REFUSED);
    expect(h.c.session.isOpen).toBe(true);
    h.c.session.close();
    await agent.waitLine(new RegExp(`session-down .*refusedCalls=${N}`));
    const logged = agent.lines.slice(from).filter((l) => /call-refused/.test(l));
    expect(logged.length).toBe(REFUSED_CALLS_LOGGED);
    await stillServes();
    h = await attacker();
    refusedInSession = 0;
    await agent.waitLine(/session-up .*mode=reconnect/);
  }, 30_000);
});
