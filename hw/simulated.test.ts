/** The simulated button (in-process and over a unix socket from another process) and indicator. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lacking } from "../test/helpers/requires.ts";
import { RecordingIndicator, SimulatedButton, SocketButton } from "./simulated.ts";

describe("SimulatedButton", () => {
  test("presses before a wait are ignored; short approves, long denies", async () => {
    const b = new SimulatedButton();
    expect(b.press("short")).toBe(false);
    expect(b.ignoredPresses).toBe(1);
    const signal = new AbortController().signal;
    const w = b.waitForVerdict(signal);
    expect(b.waiting).toBe(true);
    expect(b.press("long")).toBe(true);
    expect(await w).toBe("deny");
    const w2 = b.waitForVerdict(signal);
    b.press("approve");
    expect(await w2).toBe("approve");
  });

  test("abort, one wait at a time, close", async () => {
    const b = new SimulatedButton();
    const ac = new AbortController();
    const w = b.waitForVerdict(ac.signal);
    await expect(b.waitForVerdict(new AbortController().signal)).rejects.toThrow("already pending");
    ac.abort(new Error("timeout"));
    await expect(w).rejects.toThrow("timeout");
    expect(b.press("short")).toBe(false); // the aborted wait does not take it
    b.close();
    await expect(b.waitForVerdict(new AbortController().signal)).rejects.toThrow("closed");
  });
});

describe.skipIf(lacking(Bun.which("socat") ? null : "socat"))("SocketButton (needs socat)", () => {
  test("a separate process presses through the socket", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "qa-sock-")), "button.sock");
    const b = await SocketButton.listen(path);
    const press = async (word: string) => {
      const p = Bun.spawn(["socat", "-", `UNIX-CONNECT:${path}`], { stdin: "pipe", stdout: "pipe" });
      p.stdin.write(`${word}\n`);
      await p.stdin.end();
      const out = await new Response(p.stdout).text();
      await p.exited;
      return out.trim();
    };
    expect(await press("approve")).toBe("ignored");
    const w = b.waitForVerdict(new AbortController().signal);
    expect(await press("bogus")).toBe("unknown");
    expect(await press("deny")).toBe("taken");
    expect(await w).toBe("deny");
    b.close();
  });
});

test("RecordingIndicator records patterns", () => {
  const i = new RecordingIndicator();
  i.show("waiting");
  i.show("approved");
  expect(i.shown).toEqual(["waiting", "approved"]);
  expect(i.current).toBe("approved");
  i.close();
  expect(i.closed).toBe(true);
});
