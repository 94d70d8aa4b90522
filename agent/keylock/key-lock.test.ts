import { afterEach, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join, resolve } from "node:path";
import type { AuditRecord } from "../../core/audit/record.ts";
import { KEY_LOCK_DEFAULTS, type KeyLockConfig } from "../config.ts";
import type { AuditEntry, AuditWriter } from "../services/audit/log.ts";
import { lockFilesOf } from "./files.ts";
import { KeyLock } from "./key-lock.ts";
import { seal } from "./sealed.ts";

const FAST = { N: 2 ** 10, r: 8, p: 1 };
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

class Audit implements AuditWriter {
  readonly entries: AuditEntry[] = [];
  async append(e: AuditEntry): Promise<AuditRecord> {
    this.entries.push(e);
    return {} as AuditRecord;
  }
  noteUnrecorded(): void {}
}

/** A served home on "disk" with a sealed key, and an unlocked home on /dev/shm. */
async function setup(over: Partial<KeyLockConfig> = {}) {
  const disk = fs.mkdtempSync(join(resolve(import.meta.dir, "../.."), ".qa-keylock-"));
  const ram = fs.mkdtempSync("/dev/shm/qa-keylock-");
  dirs.push(disk, ram);
  const home = join(disk, "gnupg");
  fs.mkdirSync(home, { mode: 0o700 });
  fs.writeFileSync(join(home, "pubring.kbx"), "public");
  const key = new TextEncoder().encode("Key: (private-key secret)");
  fs.writeFileSync(lockFilesOf(home).sealed, await seal(new Map([["ABCD.key", key]]), "2468", FAST));
  fs.writeFileSync(lockFilesOf(home).primarySealed, "primary sealed");
  const config: KeyLockConfig = { ...KEY_LOCK_DEFAULTS, unlockedHome: join(ram, "open"), ...over };
  const audit = new Audit();
  const lines: string[] = [];
  const open = () =>
    KeyLock.open({
      gnupgHome: home,
      config,
      audit,
      log: (e, f) => lines.push(`${e} ${JSON.stringify(f ?? {})}`),
    });
  return {
    home,
    disk,
    config,
    audit,
    lines,
    open,
    attempts: () => fs.readFileSync(lockFilesOf(home).attempts, "utf8"),
  };
}

describe("KeyLock", () => {
  test("no sealed file: no lock (the home is served as it is)", async () => {
    const s = await setup();
    fs.rmSync(lockFilesOf(s.home).sealed);
    expect(await s.open()).toBeNull();
  });

  test("right PIN: the key appears only in the RAM home; use() holds it; lock destroys it", async () => {
    const s = await setup();
    const lock = (await s.open())!;
    expect(lock.use()).toBeNull();
    expect(await lock.unlock("2468", "sys-remote")).toEqual({ kind: "unlocked" });
    expect(fs.readFileSync(join(s.config.unlockedHome, "private-keys-v1.d/ABCD.key"), "utf8")).toContain(
      "secret",
    );
    expect(fs.readFileSync(join(s.config.unlockedHome, "pubring.kbx"), "utf8")).toBe("public");
    expect(fs.existsSync(join(s.home, "private-keys-v1.d"))).toBe(false);
    const use = lock.use()!;
    expect(use.home).toBe(s.config.unlockedHome);
    use.release();
    await lock.lock("requested");
    expect(fs.existsSync(s.config.unlockedHome)).toBe(false);
    expect(lock.use()).toBeNull();
    expect(s.audit.entries.map((e) => `${e.operation} ${e.result} ${e.detail}`)).toEqual([
      "unlock ok ",
      "lock ok requested",
    ]);
  });

  test("a restart comes up locked and destroys what an earlier run left open", async () => {
    const s = await setup();
    const first = (await s.open())!;
    await first.unlock("2468", "sys-remote");
    expect(fs.existsSync(s.config.unlockedHome)).toBe(true);
    // The old process died without locking (kill -9): the next one cleans up before serving.
    const second = (await s.open())!;
    expect(second.current).toBe("locked");
    expect(fs.existsSync(s.config.unlockedHome)).toBe(false);
  });

  test("wrong PINs count on disk across restarts; the Nth wipes both sealed files", async () => {
    const s = await setup({ maxAttempts: 3 });
    let lock = (await s.open())!;
    expect(await lock.unlock("0000", "sys-remote")).toEqual({ kind: "wrong-pin", attemptsLeft: 2 });
    expect(s.attempts()).toBe("failures=1 wiped=0\n");
    lock = (await s.open())!; // a power cut and reboot does not reset it
    expect(await lock.unlock("1111", "sys-remote")).toEqual({ kind: "wrong-pin", attemptsLeft: 1 });
    expect(await lock.unlock("2222", "sys-remote")).toEqual({ kind: "wiped", maxAttempts: 3 });
    expect(fs.existsSync(lockFilesOf(s.home).sealed)).toBe(false);
    expect(fs.existsSync(lockFilesOf(s.home).primarySealed)).toBe(false);
    expect(s.attempts()).toBe("failures=3 wiped=1\n");
    expect(await lock.unlock("2468", "sys-remote")).toEqual({ kind: "wiped", maxAttempts: 3 });
    expect((await s.open())!.current).toBe("wiped");
    expect(s.audit.entries.filter((e) => e.operation === "wipe")).toHaveLength(1);
    expect(s.lines.some((l) => l.startsWith("key-wiped"))).toBe(true);
  });

  test("the attempt is on disk while its check is still running (a power cut then costs it)", async () => {
    const s = await setup({ maxAttempts: 3 });
    const sealed = lockFilesOf(s.home).sealed;
    const bytes = fs.readFileSync(sealed);
    fs.rmSync(sealed);
    execFileSync("mkfifo", [sealed]); // the check blocks reading it until the test writes
    const lock = (await s.open())!;
    const pending = lock.unlock("0000", "x");
    const deadline = Date.now() + 5000;
    while (!fs.existsSync(lockFilesOf(s.home).attempts) && Date.now() < deadline) await Bun.sleep(5);
    // The PIN has not been checked yet (the sealed bytes are not even read), and it is counted.
    expect(s.attempts()).toBe("failures=1 wiped=0\n");
    // Opening a FIFO's write end waits for its reader: off the event loop (fs.promises), so the
    // lock's own read can start (a synchronous open here deadlocked a loaded run).
    const writer = await fs.promises.open(sealed, "w");
    await writer.write(bytes);
    await writer.close();
    expect(await pending).toEqual({ kind: "wrong-pin", attemptsLeft: 2 });
  });

  test("the right PIN resets the count", async () => {
    const s = await setup({ maxAttempts: 3 });
    const lock = (await s.open())!;
    await lock.unlock("0000", "sys-remote");
    await lock.unlock("1111", "sys-remote");
    expect(await lock.unlock("2468", "sys-remote")).toEqual({ kind: "unlocked" });
    expect(s.attempts()).toBe("failures=0 wiped=0\n");
    await lock.close();
  });

  test("parallel guesses are checked one at a time: never more than maxAttempts checks", async () => {
    const s = await setup({ maxAttempts: 2 });
    const lock = (await s.open())!;
    const results = await Promise.all(["0000", "1111", "2222", "2468"].map((p) => lock.unlock(p, "x")));
    expect(results.map((r) => r.kind)).toEqual(["wrong-pin", "wiped", "wiped", "wiped"]);
  });

  test("a plaintext key in the served home next to a sealed one is reported at start", async () => {
    const s = await setup();
    fs.mkdirSync(join(s.home, "private-keys-v1.d"));
    fs.writeFileSync(join(s.home, "private-keys-v1.d", "EEEE.key"), "Key: (private-key x)");
    await s.open();
    expect(s.lines.some((l) => l.startsWith("key-plaintext-on-card"))).toBe(true);
  });

  test("a damaged counter is used up, not zero", async () => {
    const s = await setup();
    fs.writeFileSync(lockFilesOf(s.home).attempts, "failures=0 wiped=0 junk\n");
    const lock = (await s.open())!;
    expect((await lock.unlock("2468", "x")).kind).toBe("wiped");
  });

  test("an unlockedHome on a disk filesystem is refused, and the attempt is not counted", async () => {
    const s = await setup();
    const onDisk = { ...s.config, unlockedHome: join(s.disk, "open") };
    const lock = (await KeyLock.open({ gnupgHome: s.home, config: onDisk, audit: s.audit, log: () => {} }))!;
    const r = await lock.unlock("2468", "x");
    expect(r.kind).toBe("unusable");
    expect(fs.existsSync(join(s.disk, "open"))).toBe(false);
    expect(fs.existsSync(lockFilesOf(s.home).attempts)).toBe(false);
  });

  test("unplugged: no host for unplugGraceSeconds locks; a host back in time keeps it open", async () => {
    const s = await setup({ unplugGraceSeconds: 0 });
    const lock = (await s.open())!;
    await lock.unlock("2468", "x");
    lock.linkChanged(false);
    lock.linkChanged(true); // back before the timer ran
    await Bun.sleep(0);
    expect(lock.current).toBe("unlocked");
    const locked = new Promise<void>((res) => {
      const t = setInterval(() => {
        if (lock.current === "locked" && !fs.existsSync(s.config.unlockedHome)) {
          clearInterval(t);
          res();
        }
      }, 5);
    });
    lock.linkChanged(false);
    await locked;
    expect(s.lines.some((l) => l.startsWith("key-locked") && l.includes("unplugged"))).toBe(true);
  });

  test("K1: a connection held open does not keep the key open past idleSeconds (red team)", async () => {
    // A client qube opens qubes.Gpg2 and sends nothing: before the fix, use() stopped the idle
    // timer until release(), so the key stayed open for as long as the device stayed plugged in.
    const s = await setup({ idleSeconds: 1 });
    const lock = (await s.open())!;
    const locked = new Promise<string>((res) => {
      const append = s.audit.append.bind(s.audit);
      s.audit.append = async (e) => {
        const r = await append(e);
        if (e.operation === "lock") res(e.detail ?? "");
        return r;
      };
    });
    expect(await lock.unlock("2468", "x")).toEqual({ kind: "unlocked" });
    const held = lock.use()!; // never released while the idle time runs
    const verdict = await Promise.race([locked, Bun.sleep(8000).then(() => "still unlocked")]);
    expect(verdict).toBe("idle");
    expect(lock.current).toBe("locked");
    expect(fs.existsSync(s.config.unlockedHome)).toBe(false);
    held.release(); // a late release neither throws nor restarts anything
    expect(lock.use()).toBeNull();
    await lock.close();
  });
});
