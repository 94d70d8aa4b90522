import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import { PairingLockedError } from "../../core/session/handshake.ts";
import { PAIR_CODE_LOCK_MS } from "../../core/wire/limits.ts";
import { platform } from "../../platform/index.ts";
import { CODE_PAIRING_FILE, CodePairingGuard } from "./code-pairing-guard.ts";

const realNow = platform.now;
let now = Date.parse("2026-12-05T12:00:00Z");
const clock = platform as { now: () => number };
// The wall clock is the guard's only input besides the file: these tests move it by hand.
beforeAll(() => {
  clock.now = () => now;
});
afterAll(() => {
  clock.now = realNow;
});
const dirs: string[] = [];
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), "qa-guard-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function lockedError(p: Promise<unknown>): Promise<PairingLockedError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(PairingLockedError);
  return e as PairingLockedError;
}

describe("code pairing attempts and the lock", () => {
  test("three counted attempts lock for 15 minutes; the fourth is refused; then the count starts again", async () => {
    const d = dir();
    const g = await CodePairingGuard.open(d);
    expect(g.lockedMinutes()).toBeUndefined();
    expect(await g.attempt()).toBe(1);
    expect(await g.failed()).toBeUndefined();
    expect(await g.attempt()).toBe(2);
    expect(await g.failed()).toBeUndefined();
    now += 60_000;
    expect(await g.attempt()).toBe(3);
    expect(g.lockedMinutes()).toBe(15); // locked from the third reveal on
    now += 5 * 60_000;
    expect(await g.failed()).toBe(15); // and again for 15 minutes from the third failure
    expect((await lockedError(g.attempt())).minutes).toBe(15);
    now += PAIR_CODE_LOCK_MS - 60_000;
    expect((await lockedError(g.attempt())).minutes).toBe(1);
    now += 60_000;
    expect(g.lockedMinutes()).toBeUndefined();
    expect(await g.attempt()).toBe(1);
  });

  test("the count and the lock survive a restart (the file is read again)", async () => {
    const d = dir();
    const g = await CodePairingGuard.open(d);
    for (let i = 0; i < 3; i++) {
      await g.attempt();
      await g.failed();
    }
    const path = join(d, CODE_PAIRING_FILE);
    expect(readFileSync(path, "utf8")).toContain('"failures": 3');
    const again = await CodePairingGuard.open(d);
    expect(again.lockedMinutes()).toBe(15);
    await lockedError(again.attempt());
    now += PAIR_CODE_LOCK_MS;
    expect(await (await CodePairingGuard.open(d)).attempt()).toBe(1);
  });

  test("an attempt abandoned by a crash still counts (it was on disk before the reveal)", async () => {
    const d = dir();
    await (await CodePairingGuard.open(d)).attempt(); // then the agent dies: no failed(), no succeeded()
    await (await CodePairingGuard.open(d)).attempt();
    const third = await CodePairingGuard.open(d);
    expect(await third.attempt()).toBe(3);
    await lockedError((await CodePairingGuard.open(d)).attempt());
  });

  test("a confirmed pairing takes back its own attempt only; the others stay counted", async () => {
    const g = await CodePairingGuard.open(dir());
    await g.attempt();
    await g.failed();
    await g.attempt();
    await g.attempt();
    await g.succeeded();
    expect(g.lockedMinutes()).toBeUndefined();
    expect(await g.attempt()).toBe(3); // before, a success reset the count to 0
  });

  test("concurrent handshakes cannot slip past the count", async () => {
    const g = await CodePairingGuard.open(dir());
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => g.attempt()));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(PairingLockedError);
  });

  test("a clock that went back never makes the lock longer than 15 minutes from now", async () => {
    const g = await CodePairingGuard.open(dir());
    for (let i = 0; i < 3; i++) await g.attempt();
    now -= 24 * 3_600_000;
    expect(g.lockedMinutes()).toBe(15);
    now += PAIR_CODE_LOCK_MS;
    expect(g.lockedMinutes()).toBeUndefined();
    now += 24 * 3_600_000;
  });

  test("a damaged or group-writable file stops the start with the fix; a full count without a lock locks", async () => {
    const d = dir();
    const path = join(d, CODE_PAIRING_FILE);
    for (const text of ["nope", '{"version":1}', '{"version":2,"failures":0,"lockedUntil":null}']) {
      writeFileSync(path, text, { mode: 0o600 });
      const e = await CodePairingGuard.open(d).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as Error).message).toContain("delete it");
    }
    writeFileSync(path, '{"version":1,"failures":3,"lockedUntil":null}', { mode: 0o600 });
    chmodSync(path, 0o620);
    expect(await CodePairingGuard.open(d).catch((x: unknown) => x)).toBeInstanceOf(ConfigError);
    chmodSync(path, 0o600);
    expect((await CodePairingGuard.open(d)).lockedMinutes()).toBe(15);
  });
});
