import { describe, expect, test } from "bun:test";
import type { ApprovalInput, Indicator, IndicatorPattern, Verdict } from "../../hw/input.ts";
import { ConfirmationManager, type ConfirmationRequest, promptText } from "./manager.ts";

class Input implements ApprovalInput {
  readonly description = "test";
  waits = 0;
  pending: ((v: Verdict) => void) | null = null;
  waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    this.waits++;
    return new Promise((resolve, reject) => {
      this.pending = resolve;
      signal.addEventListener("abort", () => reject(signal.reason));
    });
  }
  press(v: Verdict) {
    const p = this.pending;
    this.pending = null;
    p?.(v);
  }
  close() {}
}

class Lights implements Indicator {
  readonly description = "test";
  shown: IndicatorPattern[] = [];
  show(p: IndicatorPattern) {
    this.shown.push(p);
  }
  close() {}
}

const REQ: ConfirmationRequest = {
  client: "work",
  service: "qubes.Gpg2",
  operation: "PKSIGN",
  key: "Dev <d@x> [ABCD]",
  hashAlgo: "sha256",
  digestPrefix: "01234567",
  digestSuffix: "89ABCDEF",
};

function setup(o: { timeoutMs?: number; cooldownMs?: number; windowMs?: number } = {}) {
  const input = new Input();
  const lights = new Lights();
  const lines: string[] = [];
  let now = 1000;
  const m = new ConfirmationManager({
    input,
    indicator: lights,
    timeoutMs: o.timeoutMs ?? 1000,
    cooldownMs: o.cooldownMs ?? 5000,
    windowMs: o.windowMs ?? 0,
    resultMs: 0,
    log: (event, fields) => lines.push(`${event} ${JSON.stringify(fields)}`),
    monotonicMs: () => now,
  });
  return { m, input, lights, lines, advance: (ms: number) => (now += ms) };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("ConfirmationManager", () => {
  test("approve: the indicator shows waiting, then approved, then idle", async () => {
    const { m, input, lights } = setup();
    const p = m.decide(REQ);
    await tick();
    expect(m.busy).toBe(true);
    expect(lights.shown).toEqual(["waiting"]);
    input.press("approve");
    expect(await p).toEqual({ approved: true, decision: "approved" });
    expect(lights.shown).toEqual(["waiting", "approved", "idle"]);
  });

  test("a timeout denies", async () => {
    const { m } = setup({ timeoutMs: 30 });
    expect(await m.decide(REQ)).toEqual({ approved: false, decision: "timeout" });
  });

  test("an input error denies", async () => {
    const { m, input } = setup();
    input.waitForVerdict = () => Promise.reject(new Error("gpio gone"));
    expect(await m.decide(REQ)).toEqual({ approved: false, decision: "error" });
  });

  test("a flood cannot queue more than one prompt", async () => {
    const { m, input } = setup();
    const first = m.decide(REQ);
    await tick();
    const flood = await Promise.all(
      Array.from({ length: 20 }, () => m.decide({ ...REQ, operation: "PKDECRYPT" })),
    );
    expect(flood.every((d) => d.decision === "busy" && !d.approved)).toBe(true);
    expect(input.waits).toBe(1);
    input.press("approve");
    expect((await first).approved).toBe(true);
  });

  test("an approval is bound to one request: the next one prompts again", async () => {
    const { m, input } = setup();
    const a = m.decide(REQ);
    await tick();
    input.press("approve");
    await a;
    const b = m.decide(REQ);
    await tick();
    expect(input.waits).toBe(2);
    input.press("deny");
    expect(await b).toEqual({ approved: false, decision: "denied" });
  });

  test("after a denial the same client is refused without a prompt for the cooldown", async () => {
    const { m, input, advance } = setup({ cooldownMs: 5000 });
    const a = m.decide(REQ);
    await tick();
    input.press("deny");
    await a;
    expect(await m.decide(REQ)).toEqual({ approved: false, decision: "cooldown" });
    expect(input.waits).toBe(1);
    const other = m.decide({ ...REQ, client: "personal" });
    await tick();
    expect(input.waits).toBe(2);
    input.press("approve");
    expect((await other).approved).toBe(true);
    advance(5001);
    const later = m.decide(REQ);
    await tick();
    expect(input.waits).toBe(3);
    input.press("approve");
    expect((await later).approved).toBe(true);
  });

  test("the optional window approves the same client+operation+key only, and expires", async () => {
    const { m, input, advance } = setup({ windowMs: 60_000 });
    const a = m.decide(REQ);
    await tick();
    input.press("approve");
    await a;
    expect(await m.decide(REQ)).toEqual({ approved: true, decision: "window" });
    const other = m.decide({ ...REQ, operation: "PKDECRYPT" });
    await tick();
    expect(input.waits).toBe(2);
    input.press("deny");
    await other;
    advance(60_001);
    const late = m.decide(REQ);
    await tick();
    expect(input.waits).toBe(3);
    input.press("deny");
    expect((await late).approved).toBe(false);
  });

  test("a window over 60 s is a configuration error", () => {
    expect(() => setup({ windowMs: 61_000 })).toThrow("between 0 and 60 s");
  });

  test("the prompt shows only the device's data", async () => {
    const { m, input, lines } = setup();
    const p = m.decide(REQ);
    await tick();
    input.press("approve");
    await p;
    expect(promptText(REQ)).toBe(
      "work asks for PKSIGN (qubes.Gpg2) with Dev <d@x> [ABCD] sha256 01234567…89ABCDEF",
    );
    expect(lines[0]).toContain("confirm-request");
    expect(lines[1]).toContain('"decision":"approved"');
  });

  test("a pairing prompt shows the code and the attempt limit", () => {
    const pairing = {
      client: "qa-pub:abcd1234",
      service: "pairing",
      operation: "pair",
      key: `qa-pub:${"ab".repeat(32)}`,
      pairing: { code: "012345", peerKey: `qa-pub:${"ab".repeat(32)}`, attempt: 2 },
    };
    expect(promptText(pairing)).toBe(
      "host qa-pub:abcd1234 asks to pair; the code is 012345 " +
        "(attempt 2 of 3; code pairing locks for 15 minutes after 3 failed attempts)",
    );
  });
});

describe("conflicts: a press cannot say which request it approves", () => {
  test("another client's request while a prompt is on screen withdraws it; both are refused", async () => {
    const { m, input, lights, lines } = setup();
    const thief = m.decide({ ...REQ, client: "thief" });
    await tick();
    const owner = await m.decide({ ...REQ, client: "owner" });
    expect(owner).toEqual({ approved: false, decision: "conflict" });
    expect(await thief).toEqual({ approved: false, decision: "conflict" });
    input.press("approve"); // the owner's press now reaches no one
    expect(input.pending).toBeNull();
    expect(lights.shown).toEqual(["waiting", "conflict", "idle"]);
    expect(lines.some((l) => l.startsWith("confirm-conflict") && l.includes('"withdrawn":true'))).toBe(true);
  });

  test("the same client asking again while its prompt is on screen is only busy", async () => {
    const { m, input } = setup();
    const first = m.decide(REQ);
    await tick();
    expect(await m.decide(REQ)).toEqual({ approved: false, decision: "busy" });
    input.press("approve");
    expect(await first).toEqual({ approved: true, decision: "approved" });
  });

  test("another client within the window after an approval is refused; after it, prompted", async () => {
    const { m, input, advance } = setup();
    const thief = m.decide({ ...REQ, client: "thief" });
    await tick();
    input.press("approve"); // the owner pressed before their own request arrived
    expect((await thief).approved).toBe(true);
    advance(999);
    expect(await m.decide({ ...REQ, client: "owner" })).toEqual({ approved: false, decision: "conflict" });
    expect(input.waits).toBe(1);
    advance(1);
    const later = m.decide({ ...REQ, client: "owner" });
    await tick();
    expect(input.waits).toBe(2);
    input.press("approve");
    expect((await later).approved).toBe(true);
  });

  test("a denied or withdrawn prompt leaves no conflict window", async () => {
    const { m, input } = setup();
    const a = m.decide({ ...REQ, client: "a" });
    await tick();
    input.press("deny");
    await a;
    const b = m.decide({ ...REQ, client: "b" });
    await tick();
    expect(input.waits).toBe(2);
    input.press("approve");
    expect((await b).approved).toBe(true);
  });

  test("with a window of 0 only the prompt on screen conflicts", async () => {
    const input = new Input();
    const m = new ConfirmationManager({
      input,
      indicator: new Lights(),
      conflictWindowMs: 0,
      resultMs: 0,
      log: () => {},
      monotonicMs: () => 0,
    });
    const a = m.decide({ ...REQ, client: "a" });
    await tick();
    input.press("approve");
    expect((await a).approved).toBe(true);
    const b = m.decide({ ...REQ, client: "b" });
    await tick();
    expect(input.waits).toBe(2);
    input.press("approve");
    expect((await b).approved).toBe(true);
  });
});

describe("announcements: every prompt and every approval is told to sys-remote", () => {
  test("waiting, then the decision, with one id; window approvals and conflicts too", async () => {
    const input = new Input();
    const events: string[] = [];
    const m = new ConfirmationManager({
      input,
      indicator: new Lights(),
      windowMs: 60_000,
      conflictWindowMs: 0,
      resultMs: 0,
      log: () => {},
      monotonicMs: () => 0,
      onEvent: (e) => events.push(`${e.kind} #${e.id} ${e.request.client}`),
    });
    const a = m.decide(REQ);
    await tick();
    input.press("approve");
    await a;
    await m.decide(REQ); // through the window: no prompt, still an approval
    const b = m.decide({ ...REQ, client: "other", operation: "PKDECRYPT" });
    await tick();
    const thief = await m.decide({ ...REQ, client: "thief" });
    expect(thief.decision).toBe("conflict");
    await b;
    expect(events).toEqual([
      "waiting #1 work",
      "approved #1 work",
      "approved #2 work",
      "waiting #3 other",
      "conflict #4 thief",
      "conflict #3 other",
    ]);
  });
});

describe("the conflict window runs from the press, not from the prompt", () => {
  test("a racer's prompt on screen for 2 s, approved; the owner's request 100 ms later is a conflict", async () => {
    const { m, input, advance } = setup();
    const thief = m.decide({ ...REQ, client: "thief" });
    await tick();
    advance(2000); // the owner takes two seconds to press, thinking it is their prompt
    input.press("approve");
    expect((await thief).approved).toBe(true);
    advance(100);
    expect(await m.decide({ ...REQ, client: "owner" })).toEqual({ approved: false, decision: "conflict" });
    expect(input.waits).toBe(1);
  });
});
