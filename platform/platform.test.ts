import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { readAll, streamContract } from "../test/helpers/stream-contract.ts";
import type { ByteSource, ByteStream } from "../transport/transport.ts";
import { bunPlatform } from "./bun.ts";
import { platform } from "./index.ts";
import { nodePlatform, writeFileAtomicWith } from "./node.ts";
import { exitStatusOf, type Listener, type Platform, SpawnError } from "./platform.ts";

const dir = fs.mkdtempSync(join(tmpdir(), "qa-platform-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const text = async (s: ByteSource | null) => {
  let out = "";
  for (let c = await s!.read(); c; c = await s!.read()) out += new TextDecoder().decode(c);
  return out;
};

test("index picks the Bun platform under Bun", () => {
  expect(platform.name).toBe("bun");
});

// Spawn runs natively under Bun (Bun.spawn) and through node:child_process under Node; both
// implementations are exercised here, the Node one again under real Node in test/integration.
for (const p of [bunPlatform, nodePlatform] as Platform[]) {
  describe(`spawn (${p.name} implementation)`, () => {
    test("bytes piped through cat come back identical", async () => {
      const c = await p.spawn(["cat"], { stderr: "ignore" });
      const data = randomBytes(3 * 1024 * 1024);
      const out = readAll(c.stdout as ByteStream);
      for (let i = 0; i < data.length; i += 50_000) await c.stdin!.write(data.subarray(i, i + 50_000));
      await c.stdin!.closeWrite();
      const got = await out;
      expect(got.sha).toBe(createHash("sha256").update(data).digest("hex"));
      expect(await c.exited).toEqual({ code: 0, signal: null });
    });

    test("exit codes and stderr come through", async () => {
      const c = await p.spawn(["sh", "-c", "echo oops >&2; exit 3"], { stdin: "ignore", stdout: "ignore" });
      expect(c.stdin).toBeNull();
      expect(c.stdout).toBeNull();
      expect(await text(c.stderr)).toBe("oops\n");
      const info = await c.exited;
      expect(info).toEqual({ code: 3, signal: null });
      expect(exitStatusOf(info)).toBe(3);
    });

    test("a signal gives code null and its name; the status is 128+n", async () => {
      const c = await p.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      expect(c.pid).toBeGreaterThan(0);
      expect(c.kill("SIGTERM")).toBe(true);
      const info = await c.exited;
      expect(info).toEqual({ code: null, signal: "SIGTERM" });
      expect(exitStatusOf(info)).toBe(143);
      expect(c.kill()).toBe(false); // already gone
      const k = await p.spawn(["sh", "-c", "kill -KILL $$"], { stdin: "ignore" });
      expect(exitStatusOf(await k.exited)).toBe(137);
    });

    test("output streams while the child still runs (no buffering until exit)", async () => {
      const c = await p.spawn(["sh", "-c", "echo first; read x; echo got $x"]);
      expect(new TextDecoder().decode((await c.stdout!.read())!)).toBe("first\n");
      await c.stdin!.write(new TextEncoder().encode("second\n"));
      expect(await text(c.stdout)).toBe("got second\n");
      expect((await c.exited).code).toBe(0);
    });

    test("env replaces ours; cwd is honoured", async () => {
      const c = await p.spawn(["/usr/bin/env"], { env: { ONLY: "this" }, cwd: dir, stdin: "ignore" });
      expect(await text(c.stdout)).toBe("ONLY=this\n");
      const d = await p.spawn(["pwd"], { cwd: dir, stdin: "ignore" });
      expect((await text(d.stdout)).trim()).toBe(fs.realpathSync(dir));
    });

    test("a missing program is a SpawnError ENOENT (qrexec 127)", async () => {
      const e = await p.spawn(["/nonexistent/program"]).catch((x) => x);
      expect(e).toBeInstanceOf(SpawnError);
      expect(e.code).toBe("ENOENT");
    });

    test("writing to a child that stopped reading rejects with TransportError", async () => {
      const c = await p.spawn(["true"], { stdout: "ignore", stderr: "ignore" });
      await c.exited;
      let e: unknown = null;
      for (let i = 0; i < 64 && !e; i++)
        e = await c.stdin!.write(new Uint8Array(65536)).then(
          () => null,
          (x) => x,
        );
      expect((e as Error).name).toBe("TransportError");
      c.stdin!.close();
    });
  });
}

describe("files", () => {
  test("writeFileAtomic writes with exact mode and leaves no temporary file", async () => {
    const f = join(dir, "state.json");
    await platform.writeFileAtomic(f, "one", 0o640);
    await platform.writeFileAtomic(f, new TextEncoder().encode("two"), 0o640);
    expect(fs.readFileSync(f, "utf8")).toBe("two");
    expect((await platform.stat(f))!.mode).toBe(0o640);
    expect(fs.readdirSync(dir).filter((n) => n.includes("tmp"))).toEqual([]);
    expect(new TextDecoder().decode(await platform.readFile(f))).toBe("two");
  });

  test("a failure before the rename keeps the old content and removes the temporary file", async () => {
    const f = join(dir, "keep.txt");
    await platform.writeFileAtomic(f, "old");
    const failing = {
      ...fsp,
      rename: async () => {
        throw Object.assign(new Error("simulated ENOSPC"), { code: "ENOSPC" });
      },
    };
    const e = await writeFileAtomicWith(failing, f, "new").catch((x) => x);
    expect(e.code).toBe("ENOSPC");
    expect(fs.readFileSync(f, "utf8")).toBe("old");
    expect(fs.readdirSync(dir).filter((n) => n.startsWith(".keep.txt"))).toEqual([]);
  });

  test("stat, mkdirp and chmod", async () => {
    expect(await platform.stat(join(dir, "missing"))).toBeNull();
    const deep = join(dir, "a", "b", "c");
    await platform.mkdirp(deep, 0o700);
    await platform.mkdirp(deep, 0o700); // exists: fine
    const s = (await platform.stat(deep))!;
    expect(s.isDirectory && !s.isFile).toBe(true);
    expect(s.mode).toBe(0o700);
    await platform.chmod(deep, 0o750);
    expect((await platform.stat(deep))!.mode).toBe(0o750);
    expect((await platform.stat("/dev/null"))!.isCharDevice).toBe(true);
    expect(await platform.readFile(join(dir, "missing")).catch((x) => x.code)).toBe("ENOENT");
  });
});

test("clock and randomness", () => {
  expect(Math.abs(platform.now() - Date.now())).toBeLessThan(1000);
  const t0 = platform.monotonicMs();
  expect(platform.monotonicMs()).toBeGreaterThanOrEqual(t0);
  const r = platform.randomBytes(200_000); // more than one getRandomValues call
  expect(r.length).toBe(200_000);
  expect(r.subarray(150_000).some((b) => b !== 0)).toBe(true);
  expect(platform.randomBytes(16)).not.toEqual(platform.randomBytes(16));
});

describe("unix sockets", () => {
  let listeners: Listener[] = [];
  afterEach(async () => {
    await Promise.all(listeners.map((l) => l.close()));
    listeners = [];
  });
  let n = 0;
  const sockPath = () => join(dir, `d${n++}.sock`);

  streamContract({
    name: "unix socket",
    pair: async () => {
      const path = sockPath();
      let accepted!: (s: ByteStream) => void;
      const server = new Promise<ByteStream>((r) => {
        accepted = r;
      });
      listeners.push(await platform.unixListen(path, accepted));
      const client = await platform.unixConnect(path);
      return [client, await server];
    },
    halfClose: true,
    peerCloseEof: true,
    stallBound: 64 * 1024 * 1024,
  });

  test("the socket file is private, replaced when stale, removed on close", async () => {
    const path = sockPath();
    const l = await platform.unixListen(path, (s) => s.close());
    expect((await platform.stat(path))!.mode).toBe(0o600);
    expect(await platform.unixListen(path, () => {}).catch((e) => e)).toBeInstanceOf(ConfigError);
    await l.close();
    expect(await platform.stat(path)).toBeNull();
    // A stale file left by a crashed daemon (nobody listening) is taken over.
    await (await platform.unixListen(path, () => {}, { mode: 0o660 })).close();
    fs.writeFileSync(path, "");
    const again = await platform.unixListen(path, (s) => s.close(), { mode: 0o660 });
    listeners.push(again);
    expect((await platform.stat(path))!.mode).toBe(0o660);
    const c = await platform.unixConnect(path);
    expect(await c.read()).toBeNull();
    c.close();
  });

  test("connecting where nobody listens is a TransportError", async () => {
    const e = await platform.unixConnect(join(dir, "none.sock")).catch((x) => x);
    expect(e.name).toBe("TransportError");
    expect(e.code).toBe("ENOENT");
  });
});
