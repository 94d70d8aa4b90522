/**
 * The agent listening on a tty (the USB gadget serial line; a socat pty pair here): pairing and
 * a call over the line, then the host reconnecting on the same line after the session ended
 * (the agent reopens the tty and answers the new handshake).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { hasSocat, type PtyPair, ptyPair } from "../../fixtures/pty.ts";
import { cleanup, startAgent } from "../helpers/agent/harness.ts";
import { connectHost, hostCall, pairHost, text } from "../helpers/agent/host-side.ts";
import { lacking } from "../helpers/requires.ts";

let pty: PtyPair | null = null;
afterEach(() => {
  cleanup();
  pty?.close();
  pty = null;
});

describe.skipIf(lacking(hasSocat() ? null : "socat"))("agent on a tty", () => {
  test("pair, call, end the session, reconnect on the same line, call again", async () => {
    pty = await ptyPair();
    const agent = await startAgent({
      config: { listen: { tty: pty.a } },
      hostTty: pty.b,
      policy: { "30-test.policy": "test.Echo * @anyvm @anyvm allow\n" },
      services: { "test.Echo": '#!/bin/sh\necho "over the line $1"\n' },
    });
    const { c, hostKey, deviceKey } = await pairHost(agent);
    expect(agent.lines.some((l) => /session-up .*mode=pair-psk .*via="serial /.test(l))).toBe(true);
    expect(text((await hostCall(c, { service: "test.Echo", arg: "one" })).stdout)).toBe(
      "over the line one\n",
    );
    c.session.close();
    await agent.waitLine(/session-down/);

    const again = await connectHost(pty.b, { mode: "reconnect", hostKey, deviceKey });
    await agent.waitLine(/session-up .*mode=reconnect/);
    expect(text((await hostCall(again, { service: "test.Echo", arg: "two" })).stdout)).toBe(
      "over the line two\n",
    );
    again.session.close();
  });
});
