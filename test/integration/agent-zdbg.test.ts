import { test, expect, afterEach } from "bun:test";
import { generateStaticKeyPair } from "../../core/session/key-text.ts";
import { cleanup, connectHost, hostCall, pairHost, startAgent } from "../../agent/testing/harness.ts";
afterEach(cleanup);
test("dbg", async () => {
  const agent = await startAgent();
  const { c, token, hostKey, deviceKey } = await pairHost(agent);
  const thief = connectHost(agent.port, { mode: "pair-psk", hostKey: generateStaticKeyPair(), token });
  await expect(thief).rejects.toThrow();
  setTimeout(() => console.log(agent.lines.slice(-3)), 2000);
  await agent.waitLine(/refused/);
});
