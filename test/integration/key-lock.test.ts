/**
 * The PIN-locked key against a thief and a guesser (docs/key-lock.md), through the whole stack
 * (gpg-e2e-stack.ts: real agent, daemon, CLI, gpg): `gpg-setup --pin` leaves no usable secret key
 * on the card (a copy of the state dir signs nothing with a real gpg); while locked, signing is
 * refused with the fix on the caller's stderr and a journal line; `qubes-air unlock` with the
 * wrong PIN counts down, with the right one the key opens into /dev/shm only and signing works
 * with a press; idle re-locks it; maxAttempts wrong PINs through the link wipe the sealed files.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import type { ByteSink } from "../../transport/transport.ts";
import {
  callWithStreams,
  cli,
  clientHome,
  DEVICE,
  forwardAgentSocket,
  gpgOk,
  gpgRun,
  type Stack,
  spawnCall,
  startStack,
  UID,
  waitForNth,
} from "./gpg-e2e-stack.ts";

setDefaultTimeout(90_000);

const PIN = "482913";
const unlock = (stack: Stack, pin: string) =>
  cli(stack.host, ["unlock", "--source", "sys-remote", DEVICE], `${pin}\n`);

/** Every file below dir, recursively (relative paths). */
/**
 * Imports a fresh public key (user ID `who`) through qubes.GpgImportKey from "mail", pressing
 * approve; returns its fingerprint. (Red team I5: imports on a PIN-locked device.)
 */
async function importFreshKey(stack: Stack, who: string): Promise<string> {
  const home = join(stack.dir, `import-${who}`);
  mkdirSync(home, { mode: 0o700 });
  stack.homes.push(home);
  await gpgOk(home, [
    "--passphrase",
    "",
    "--quick-gen-key",
    `${who} <${who}@example.invalid>`,
    "ed25519",
    "sign",
    "never",
  ]);
  const listed = await gpgOk(home, ["--with-colons", "--list-keys"]);
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(listed.stdout)![1]!;
  const key = (await gpgOk(home, ["--armor", "--export", fpr])).stdout;
  const p = spawnCall(stack, "qubes.GpgImportKey", "mail");
  p.stdin.write(key);
  await p.stdin.end();
  await stack.answerNextPrompt("approve");
  expect(await p.exited).toBe(0);
  return fpr;
}

const listKeys = async (home: string) => (await gpgOk(home, ["--with-colons", "--list-keys"])).stdout;
const fprOfHome = async (home: string, who: string) =>
  /^fpr:+([0-9A-F]{40}):/m.exec(
    (await gpgOk(home, ["--with-colons", "--list-keys", `${who}@example.invalid`])).stdout,
  )![1]!;

/** Processes of ours whose argv or environment holds `pin` (read from /proc). */
function pinInProcesses(pin: string): string[] {
  const hits: string[] = [];
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    for (const what of ["cmdline", "environ"]) {
      try {
        if (readFileSync(`/proc/${pid}/${what}`).includes(Buffer.from(pin))) hits.push(`${pid} ${what}`);
      } catch {
        // gone, or not ours
      }
    }
  }
  return hits;
}

function filesUnder(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? filesUnder(join(dir, e.name), `${prefix}${e.name}/`)
      : e.isFile()
        ? [`${prefix}${e.name}`]
        : [],
  );
}

/** A qubes.Gpg2 call from "work" that sends nothing: what the device says before any Assuan. */
async function gpg2WithNoInput(stack: Stack): Promise<{ status: number; stderr: string }> {
  let stderr = "";
  const sink = (keep: boolean): ByteSink => ({
    write: async (d) => {
      if (keep) stderr += new TextDecoder().decode(d);
    },
    closeWrite: async () => {},
    close: () => {},
    closed: new Promise(() => {}),
    description: "test sink",
  });
  const status = await callWithStreams(stack, "qubes.Gpg2", "work", {
    stdin: { read: async () => null },
    stdout: sink(false),
    stderr: sink(true),
  });
  return { status, stderr };
}

/** Runs gpg in the client while the test presses the button for each prompt. */
async function signWithPress(stack: Stack, home: string, dir: string) {
  writeFileSync(join(dir, "m.txt"), "signed after unlock\n");
  const running = gpgRun(home, [
    "--yes",
    "--armor",
    "--detach-sign",
    "-o",
    join(dir, "m.asc"),
    join(dir, "m.txt"),
  ]);
  await stack.answerNextPrompt("approve");
  return running;
}

describe("a stolen card, a guesser, and the owner", () => {
  let stack: Stack;
  let client: { home: string; fingerprint: string };
  let verifier: string;
  let forwarder: Awaited<ReturnType<typeof forwardAgentSocket>>;

  beforeAll(async () => {
    stack = await startStack({ gpg: true, pin: PIN, config: { keyLock: { unplugGraceSeconds: 1 } } });
    client = await clientHome(stack);
    verifier = (await clientHome(stack, "ver")).home;
    forwarder = await forwardAgentSocket(stack, client.home, "work");
  }, 120_000);
  afterAll(async () => {
    await forwarder?.close();
    await stack?.close();
  });

  test("the card holds no plaintext secret key: a real gpg on a copy of the state dir cannot sign", async () => {
    const files = filesUnder(stack.stateDir);
    expect(files).toContain("gnupg.sealed");
    expect(files).toContain("gnupg.primary.sealed");
    expect(files.filter((f) => f.includes("private-keys-v1.d/"))).toEqual([]);
    // The thief's copy: both homes, with a real gpg.
    const copy = join(stack.dir, "stolen");
    cpSync(stack.stateDir, copy, {
      recursive: true,
      filter: (src) => !statSync(src).isSocket(),
    });
    for (const home of ["gnupg", "gnupg-primary"]) {
      stack.homes.push(join(copy, home));
      writeFileSync(join(copy, "m.txt"), "forged\n");
      const r = await gpgRun(join(copy, home), [
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--local-user",
        UID,
        "--detach-sign",
        "-o",
        join(copy, `${home}.sig`),
        join(copy, "m.txt"),
      ]);
      expect(r.code).not.toBe(0);
      expect(existsSync(join(copy, `${home}.sig`))).toBe(false);
    }
    // The public key is there (the card may be read); the sealed file is not a GnuPG key.
    const sealed = readFileSync(join(copy, "gnupg.sealed"));
    expect(sealed.subarray(0, 24).toString()).toBe("qubes-air sealed key v1\n");
    const imported = await gpgRun(join(copy, "gnupg"), ["--import"], sealed);
    expect(imported.stdout + imported.stderr).not.toMatch(/secret key imported/);
  });

  test("while locked, signing is refused with the fix on the caller's stderr and a journal line", async () => {
    const { status, stderr } = await gpg2WithNoInput(stack);
    expect(status).toBe(1);
    expect(stderr).toContain(`the device's key is locked; unlock it first: qubes-air unlock ${DEVICE}`);
    await waitForNth(stack.agent, /gpg-locked client=work service=qubes.Gpg2 state=locked/, 1);
    // Stock gpg in the client fails too, and no prompt was shown.
    writeFileSync(join(stack.dir, "l.txt"), "locked\n");
    const r = await gpgRun(client.home, [
      "--yes",
      "--detach-sign",
      "-o",
      join(stack.dir, "l.sig"),
      join(stack.dir, "l.txt"),
    ]);
    expect(r.code).not.toBe(0);
    expect(stack.logged(/confirm-request /)).toEqual([]);
  });

  test("I5: a public key imported while locked goes to the card's public keyring; nothing secret reaches the card", async () => {
    const fpr = await importFreshKey(stack, "locked");
    expect(await listKeys(join(stack.stateDir, "gnupg"))).toContain(fpr);
    expect(filesUnder(stack.stateDir).filter((f) => f.includes("private-keys-v1.d/"))).toEqual([]);
    expect(readFileSync(join(stack.stateDir, "gnupg.pin-attempts"), "utf8")).toBe("failures=0 wiped=0\n");
  });

  test("a wrong PIN through the link counts down; the attempt is on disk", async () => {
    const r = await unlock(stack, "731946");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("wrong PIN: 4 attempts left before the key is wiped");
    expect(readFileSync(join(stack.stateDir, "gnupg.pin-attempts"), "utf8")).toBe("failures=1 wiped=0\n");
    // Not a PIN at all: refused here, nothing sent, nothing counted.
    const bad = await unlock(stack, "12");
    expect(bad.code).toBe(2);
    expect(readFileSync(join(stack.stateDir, "gnupg.pin-attempts"), "utf8")).toBe("failures=1 wiped=0\n");
  });

  test("the right PIN unlocks into /dev/shm only; signing works through the stack with a press", async () => {
    // Red team K3: while the unlock runs, no process shows the PIN in its argv or environment.
    const seen = { scans: 0, found: [] as string[] };
    const running = unlock(stack, PIN);
    let done = false;
    void running.finally(() => {
      done = true;
    });
    while (!done || seen.scans === 0) {
      seen.found.push(...pinInProcesses(PIN));
      seen.scans++;
      await Bun.sleep(0); // yield to the unlock's I/O between scans
    }
    expect(seen.found).toEqual([]);
    const r = await running;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${DEVICE}: unlocked\n`);
    expect(readFileSync(join(stack.stateDir, "gnupg.pin-attempts"), "utf8")).toBe("failures=0 wiped=0\n");
    expect(stack.unlockedHome.startsWith("/dev/shm/")).toBe(true);
    expect(filesUnder(stack.unlockedHome).some((f) => f.startsWith("private-keys-v1.d/"))).toBe(true);
    // Still nothing opened on the card.
    expect(filesUnder(stack.stateDir).filter((f) => f.includes("private-keys-v1.d/"))).toEqual([]);

    const signed = await signWithPress(stack, client.home, stack.dir);
    expect(signed.code).toBe(0);
    const v = await gpgRun(verifier, [
      "--status-fd",
      "1",
      "--verify",
      join(stack.dir, "m.asc"),
      join(stack.dir, "m.txt"),
    ]);
    expect(v.stdout).toContain("[GNUPG:] VALIDSIG");

    // The unlock attempts are in the audit chain.
    const log = verifyAuditLog(readFileSync(join(stack.stateDir, "audit.log"), "utf8"));
    expect(log.ok).toBe(true);
    const unlocks = log.records.filter((x) => x.service === "qubesair.Unlock");
    expect(unlocks.map((x) => `${x.client} ${x.operation} ${x.result}`)).toEqual([
      "sys-remote unlock wrong-pin",
      "sys-remote unlock ok",
    ]);
    // Red team K3: neither PIN tried is in either journal or in any file on the card.
    for (const pin of [PIN, "731946"]) {
      expect(stack.agent.lines.filter((l) => l.includes(pin))).toEqual([]);
      expect(stack.daemon.lines.filter((l) => l.includes(pin))).toEqual([]);
      const onCard = filesUnder(stack.stateDir).filter((f) =>
        readFileSync(join(stack.stateDir, f)).includes(Buffer.from(pin)),
      );
      expect([pin, onCard]).toEqual([pin, []]);
    }
  });
  test("I5: while unlocked, an import still goes to the card's public keyring, and the opened home's keys are untouched", async () => {
    const opened = join(stack.unlockedHome, "private-keys-v1.d");
    const before = filesUnder(opened).map((f) => `${f} ${readFileSync(join(opened, f)).length}`);
    // The key imported while locked was copied into the opened home at unlock.
    expect(await listKeys(stack.unlockedHome)).toContain(
      await fprOfHome(join(stack.stateDir, "gnupg"), "locked"),
    );
    const fpr = await importFreshKey(stack, "unlocked");
    expect(await listKeys(join(stack.stateDir, "gnupg"))).toContain(fpr);
    expect(filesUnder(stack.stateDir).filter((f) => f.includes("private-keys-v1.d/"))).toEqual([]);
    expect(filesUnder(opened).map((f) => `${f} ${readFileSync(join(opened, f)).length}`)).toEqual(before);
  });

  test("unplugged: the host gone for unplugGraceSeconds locks the key and removes the opened home", async () => {
    expect(existsSync(stack.unlockedHome)).toBe(true);
    stack.daemon.proc.kill("SIGKILL"); // sys-remote (or the cable) gone: the session ends
    await waitForNth(stack.agent, /session-down /, 1);
    await waitForNth(stack.agent, /key-locked reason=unplugged/, 1, 20_000);
    expect(existsSync(stack.unlockedHome)).toBe(false);
  });
});

describe("re-lock on idle, and a guesser through the link wipes the key", () => {
  let stack: Stack;
  let client: { home: string; fingerprint: string };
  let forwarder: Awaited<ReturnType<typeof forwardAgentSocket>>;

  beforeAll(async () => {
    stack = await startStack({
      gpg: true,
      pin: PIN,
      config: { keyLock: { maxAttempts: 3, idleSeconds: 2 } },
    });
    client = await clientHome(stack);
    forwarder = await forwardAgentSocket(stack, client.home, "work");
  }, 120_000);
  afterAll(async () => {
    await forwarder?.close();
    await stack?.close();
  });

  test("idle: unlocked, used, then locked again after idleSeconds with the opened home gone", async () => {
    expect((await unlock(stack, PIN)).code).toBe(0);
    const signed = await signWithPress(stack, client.home, stack.dir);
    expect(signed.code).toBe(0);
    await waitForNth(stack.agent, /key-locked reason=idle/, 1, 20_000);
    expect(existsSync(stack.unlockedHome)).toBe(false);
    const { status, stderr } = await gpg2WithNoInput(stack);
    expect(status).toBe(1);
    expect(stderr).toContain("locked");
  });

  test("maxAttempts wrong PINs wipe the sealed files; then even the right PIN cannot help", async () => {
    expect((await unlock(stack, "111111")).stderr).toContain("2 attempts left");
    expect((await unlock(stack, "222222")).stderr).toContain("1 attempt left");
    const last = await unlock(stack, "333333");
    expect(last.code).toBe(1);
    expect(last.stderr).toContain("the key was wiped after 3 wrong PINs");
    expect(existsSync(join(stack.stateDir, "gnupg.sealed"))).toBe(false);
    expect(existsSync(join(stack.stateDir, "gnupg.primary.sealed"))).toBe(false);
    await waitForNth(stack.agent, /key-wiped failures=3 max=3/, 1);
    const right = await unlock(stack, PIN);
    expect(right.code).toBe(1);
    expect(right.stderr).toContain("wiped");
    const log = verifyAuditLog(readFileSync(join(stack.stateDir, "audit.log"), "utf8"));
    expect(log.records.some((x) => x.service === "qubesair.Unlock" && x.operation === "wipe")).toBe(true);
  });
});

describe("shutdown locks", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ gpg: true, pin: PIN });
  }, 120_000);
  afterAll(async () => {
    await stack?.close();
  });

  test("SIGTERM: the agent locks (gpg-agent stopped, opened home destroyed) before it exits", async () => {
    expect((await unlock(stack, PIN)).code).toBe(0);
    expect(existsSync(join(stack.unlockedHome, "private-keys-v1.d"))).toBe(true);
    stack.agent.proc.kill("SIGTERM");
    await stack.agent.proc.exited;
    await waitForNth(stack.agent, /key-locked reason=shutdown/, 1);
    expect(existsSync(stack.unlockedHome)).toBe(false);
  });
});
