/**
 * Told in Qubes (issue 13, part 1), with real processes: a device policy `ask` call made through
 * the relay exactly as qrexec starts it in sys-remote (argv, QREXEC_* environment, stdin/stdout
 * the caller's streams, stderr the caller's stderr). While the device waits for a press, and when
 * the request is approved, denied or expires, the caller's stderr gets a line with the same request
 * code as the device's own prompt; sys-remote's journal has the line, a desktop notification goes
 * out (a fake notify-send on PATH records its arguments: the stand-in for the desktop), and
 * `qubes-air list` shows the prompt while it waits. The call's stdout carries its data only.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, ROOT, stubPath, tempDir } from "../../fixtures/qubes-stubs/harness.ts";
import { cli, DEVICE, type Stack, startStack } from "./gpg-e2e-stack.ts";

setDefaultTimeout(90_000);

const TIMEOUT_S = 3;
let stack: Stack;
let notified: string;

beforeAll(async () => {
  const bin = tempDir("qa-notify-bin-");
  notified = join(bin, "notified");
  writeFileSync(
    join(bin, "notify-send"),
    `#!/bin/sh\nprintf '%s|' "$@" >> '${notified}'\necho >> '${notified}'\n`,
  );
  chmodSync(join(bin, "notify-send"), 0o755);
  stack = await startStack({
    confirmTimeoutSeconds: TIMEOUT_S,
    policy: { "30-test.policy": "test.Ask  *  @anyvm  @anyvm  ask\n" },
    services: { "test.Ask": "#!/bin/sh\necho asked-and-ran\n" },
    hostEnv: { DISPLAY: ":0", PATH: `${bin}:${stubPath()}` },
  });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

/** The relay as qrexec-agent runs /etc/qubes-rpc/qubesair.NoiseProxy for `caller`. */
function relay(caller: string, arg: string) {
  const argument = `${DEVICE}+test.Ask+${arg}`;
  const proc = Bun.spawn([BUN, join(ROOT, "host/relay/main.ts"), argument], {
    env: {
      ...stack.host.env,
      QREXEC_SERVICE_ARGUMENT: argument,
      QREXEC_REMOTE_DOMAIN: caller,
      QREXEC_SERVICE_FULL_NAME: `qubesair.NoiseProxy+${argument}`,
      QUBESDB_STUB: `/remote/${DEVICE}=${DEVICE}`,
    },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    cwd: ROOT,
  });
  proc.stdin.end();
  let stderr = "";
  const waiters: (() => void)[] = [];
  const reading = (async () => {
    for await (const c of proc.stderr) {
      stderr += new TextDecoder().decode(c);
      for (const w of waiters.splice(0)) w();
    }
  })();
  return {
    /** Resolves once stderr holds a line matching re (while the call is still running). */
    async stderrLine(re: RegExp): Promise<string> {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const hit = stderr.split("\n").find((l) => re.test(l));
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no stderr line ${re}:\n${stderr}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
    async done() {
      const stdout = await new Response(proc.stdout).text();
      const code = await proc.exited;
      await reading;
      return { code, stdout, stderr };
    },
  };
}

const codeOf = (prompt: string) => /confirm-request id=\d+ code=([A-Z0-9]{4})/.exec(prompt)![1]!;
/** The fake notify-send's record once it holds `text` (notify-send runs beside the journal line). */
async function noted(text: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const all = existsSync(notified) ? readFileSync(notified, "utf8") : "";
    if (all.includes(text)) return all;
    if (Date.now() > deadline) throw new Error(`no notification ${text}:\n${all}`);
    await Bun.sleep(20);
  }
}

describe("told in Qubes: the caller's stderr, the journal, a notification, qubes-air list", () => {
  test("waiting, then approved: the same request code as the device's prompt everywhere", async () => {
    const call = relay("work", "a1");
    const prompt = await stack.nextPrompt();
    const code = codeOf(prompt);
    // While the device waits: the caller's stderr, the journal, the desktop, `qubes-air list`.
    const waiting = await call.stderrLine(/waiting for a press/);
    expect(waiting).toBe(
      `qubes-air: ${DEVICE}: waiting for a press [${code}] #${/id=(\d+)/.exec(prompt)![1]}: work asks for call (test.Ask) with test.Ask+a1 arg=a1`,
    );
    await stack.daemon.waitLine(new RegExp(`waiting for a press \\[${code}\\].*work asks for call`));
    const listed = await cli(stack.host, ["list"]);
    expect(listed.stdout).toContain(
      `Waiting for a press on the device:\n  ${DEVICE} [${code}] work asks for call (test.Ask)`,
    );
    const json = JSON.parse((await cli(stack.host, ["list", "--json"])).stdout);
    expect(json[0].prompts[0]).toMatchObject({ code, client: "work", service: "test.Ask", detail: "arg=a1" });
    await noted(
      `--urgency=critical|--expire-time=0|--|${DEVICE}: waiting for a press [${code}]|work asks for call (test.Ask)`,
    );

    expect(await stack.press("approve")).toBe("taken");
    const r = await call.done();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("asked-and-ran\n"); // the lines never enter the call's data
    expect(r.stderr).toContain(`qubes-air: ${DEVICE}: approved [${code}] #`);
    await stack.daemon.waitLine(new RegExp(`approved \\[${code}\\]`));
    await noted(`--urgency=normal|--expire-time=10000|--|${DEVICE}: approved [${code}]|`);
    expect((await cli(stack.host, ["list"])).stdout).not.toContain("Waiting for a press");
  });

  test("denied: the caller reads the denial with the prompt's code; the call is refused", async () => {
    const call = relay("personal", "d1");
    const code = codeOf(await stack.nextPrompt());
    await call.stderrLine(new RegExp(`waiting for a press \\[${code}\\]`));
    expect(await stack.press("deny")).toBe("taken");
    const r = await call.done();
    expect([r.code, r.stdout]).toEqual([126, ""]);
    expect(r.stderr).toContain(`qubes-air: ${DEVICE}: denied [${code}] #`);
    await noted(`${DEVICE}: denied [${code}]|personal asks for call`);
  });

  test("expired: nobody pressed; the caller reads that the prompt expired", async () => {
    const call = relay("vault", "e1");
    const code = codeOf(await stack.nextPrompt());
    await call.stderrLine(new RegExp(`waiting for a press \\[${code}\\]`));
    const r = await call.done();
    expect([r.code, r.stdout]).toEqual([126, ""]);
    expect(r.stderr).toContain(`qubes-air: ${DEVICE}: expired [${code}] #`);
    await noted(`${DEVICE}: expired [${code}]|vault asks for call`);
  });

  test("another qube's prompt is not written to this caller's stderr", async () => {
    const mine = relay("work", "m1");
    const code = codeOf(await stack.nextPrompt());
    await mine.stderrLine(new RegExp(`\\[${code}\\]`));
    expect(await stack.press("approve")).toBe("taken");
    await mine.done();
    const other = relay("other", "o1");
    const otherCode = codeOf(await stack.nextPrompt());
    expect(await stack.press("approve")).toBe("taken");
    const r = await other.done();
    expect(r.stderr).not.toContain(`[${code}]`);
    expect(r.stderr).toContain(`[${otherCode}]`);
  });
});
