/**
 * A device policy `ask` rule with real processes: `qubes-air call` in sys-remote -> daemon ->
 * Noise link -> the agent, whose one ConfirmationManager asks the (simulated socket) button the
 * test presses. Approve runs the call; deny refuses it (126) with nothing run, and the same
 * client is not asked again at once (cooldown); no answer in time refuses (126); a flood of
 * concurrent asks from one client gets one prompt, the others refused at once; two clients racing
 * one prompt are both refused (the conflict rule). Every decision is in the audit log, which
 * `qubes-air logs` fetches and verifies.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { cli, DEVICE, type Stack, startStack, waitForNth } from "./gpg-e2e-stack.ts";

setDefaultTimeout(60_000);

const TIMEOUT_S = 5;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    confirmTimeoutSeconds: TIMEOUT_S,
    policy: { "30-test.policy": "test.Ask  *  @anyvm  @anyvm  ask\n" },
    services: {
      "test.Ask": '#!/bin/sh\ntouch "$HOME/ran-$QREXEC_REMOTE_DOMAIN-$1"\necho asked-and-ran\n',
    },
  });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

const call = (source: string, arg: string) =>
  cli(stack.host, ["call", "--source", source, DEVICE, `test.Ask+${arg}`], "");
const ran = (source: string, arg: string) => existsSync(join(stack.dir, "home", `ran-${source}-${arg}`));

describe("policy ask: a physical confirmation on the device", () => {
  test("approve: the call runs, once", async () => {
    const pending = call("alpha", "a1");
    const prompt = await stack.answerNextPrompt("approve");
    expect(prompt).toMatch(/text="\[\w{4}\] alpha asks to call test.Ask\+a1"/);
    const r = await pending;
    expect([r.code, r.stdout]).toEqual([0, "asked-and-ran\n"]);
    expect(ran("alpha", "a1")).toBe(true);
    await stack.agent.waitLine(/call source=alpha service=test.Ask\+a1 decision=ask-approved .*status=0/);
    // Told in Qubes: sys-remote's journal shows the prompt and the approval, with the device's id.
    const [, id, code] = /confirm-request id=(\d+) code=(\w+)/.exec(prompt)!;
    await stack.daemon.waitLine(
      new RegExp(
        `pi-gpg: waiting for a press \\[${code}\\] #${id}: alpha asks for call \\(test\\.Ask\\) with test\\.Ask\\+a1 arg=a1`,
      ),
    );
    await stack.daemon.waitLine(
      new RegExp(`pi-gpg: approved \\[${code}\\] #${id}: alpha asks for call \\(test\\.Ask\\)`),
    );
  });

  test("deny: 126 and nothing ran; the same client is then refused without a new prompt", async () => {
    const pending = call("beta", "b1");
    await stack.answerNextPrompt("deny");
    const r = await pending;
    expect([r.code, r.stdout, r.stderr]).toEqual([126, "", "Request refused\n"]);
    expect(ran("beta", "b1")).toBe(false);
    const prompts = stack.logged(/confirm-request /).length;
    const again = await call("beta", "b2");
    expect(again.code).toBe(126);
    await waitForNth(stack.agent, /confirm-cooldown client=beta/, 1);
    expect(stack.logged(/confirm-request /).length).toBe(prompts);
    expect(ran("beta", "b2")).toBe(false);
  });

  test(`no answer within confirmTimeoutSeconds (${TIMEOUT_S} s): 126 and nothing ran`, async () => {
    const started = Date.now();
    const pending = call("gamma", "g1");
    await stack.nextPrompt();
    const r = await pending;
    expect(r.code).toBe(126);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_S * 1000 - 100);
    expect(ran("gamma", "g1")).toBe(false);
    await waitForNth(stack.agent, /confirm-result id=\d+ decision=timeout/, 1);
  });

  test("a flood of concurrent asks from one client: one prompt; the others are refused at once; then the one is answered", async () => {
    const first = call("delta", "d0");
    await stack.nextPrompt();
    const prompts = stack.logged(/confirm-request /).length;
    const flood = await Promise.all(Array.from({ length: 8 }, (_, i) => call("delta", `f${i}`)));
    expect(flood.map((r) => r.code)).toEqual(Array(8).fill(126));
    await waitForNth(stack.agent, /confirm-busy client=delta/, 8);
    expect(stack.logged(/confirm-request /).length).toBe(prompts);
    expect(await stack.press("approve")).toBe("taken");
    expect((await first).code).toBe(0);
    expect(ran("delta", "d0")).toBe(true);
    for (let i = 0; i < 8; i++) expect(ran("delta", `f${i}`)).toBe(false);
  });

  test("two clients racing one prompt: it is withdrawn, both are refused, and the press approves nothing", async () => {
    // A qube that dom0 lets ask gets its request in just before the owner's: on a button-only
    // device the owner's press would approve the thief's request. Instead neither runs.
    const thief = call("thief", "t1");
    await stack.nextPrompt();
    const owner = await call("owner", "o1");
    expect([owner.code, owner.stderr]).toEqual([126, "Request refused\n"]);
    expect((await thief).code).toBe(126);
    await stack.agent.waitLine(/confirm-conflict client=owner other=thief withdrawn=true/);
    // Both refusals are announced in Qubes; they may arrive in either order.
    const announced = (who: string) =>
      new RegExp(`pi-gpg: refused \\(conflict\\) \\[\\w{4}\\] #\\d+: ${who} asks for call`);
    await stack.daemon.waitLine(/pi-gpg: refused \(conflict\) \[\w{4}\] #\d+: (thief|owner) asks for call/);
    await stack.daemon.waitLine(/pi-gpg: refused \(conflict\) \[\w{4}\] #\d+: (thief|owner) asks for call/);
    for (const who of ["thief", "owner"])
      expect(stack.daemon.lines.some((l) => announced(who).test(l))).toBe(true);
    expect(await stack.press("approve")).toBe("ignored");
    expect(ran("thief", "t1")).toBe(false);
    expect(ran("owner", "o1")).toBe(false);
  });

  test("every ask is in the audit log with its decision and outcome, and the chain verifies", async () => {
    // An approved call has a request record before it runs and a result record once it has ended
    // (just after its exit status); the results are listed here, with the request they answer.
    let asks: string[] = [];
    for (let i = 0; i < 50 && !asks.some((a) => a.startsWith("thief")); i++) {
      const r = await cli(stack.host, ["logs", "--json", "--source", "sys-remote", DEVICE]);
      expect(r.code).toBe(0);
      asks = (JSON.parse(r.stdout).records as Record<string, string>[])
        .filter((x) => x.operation === "call" && x.result !== "requested")
        .map(
          (x) =>
            `${x.client} ${x.service} ${x.decision} ${x.result} ${(x.detail ?? "").replace(/^request #\d+; /, "")}`,
        );
    }
    expect(asks.slice(0, 4)).toEqual([
      "alpha test.Ask approved exit 0 arg=a1",
      "beta test.Ask denied refused arg=b1",
      "beta test.Ask cooldown refused arg=b2",
      "gamma test.Ask timeout refused arg=g1",
    ]);
    expect(asks.filter((a) => / busy refused /.test(a))).toHaveLength(8);
    expect(asks).toContain("delta test.Ask approved exit 0 arg=d0");
    expect(asks.filter((a) => / conflict refused /.test(a)).sort()).toEqual([
      "owner test.Ask conflict refused arg=o1",
      "thief test.Ask conflict refused arg=t1",
    ]);
  });
});
