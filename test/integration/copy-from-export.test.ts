/**
 * qubesair.CopyFrom against the real agent, as a compromised sys-remote would use it: with a
 * policy that allows it from every qube, every path that leads to the agent's secrets or out of
 * the export directory is refused with a message on stderr and not one byte on stdout, while
 * files and directories inside the export directory still copy. Then the configuration side:
 * an exportDir that holds the secrets stops the agent at start, and one that reaches them
 * through a link refuses every copy.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { linkSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCall } from "../../calls/caller.ts";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import type { Connected } from "../../core/session/establish.ts";
import { memoryPair } from "../../transport/memory.ts";
import {
  type AgentProcess,
  cleanup,
  DEVICE,
  makeDir,
  runCli,
  startAgent,
  writeAgentFiles,
} from "../helpers/agent/harness.ts";
import { hostCall, pairHost } from "../helpers/agent/host-side.ts";

setDefaultTimeout(30_000);

const ALLOW_ALL = { "30-test.policy": "qubesair.CopyFrom * @anyvm @anyvm allow\n" };

let agent: AgentProcess;
let host: Connected;
let state: string;
let exported: string;

beforeAll(async () => {
  agent = await startAgent({ policy: ALLOW_ALL });
  host = (await pairHost(agent)).c;
  state = join(agent.dir, "state");
  exported = join(agent.dir, "home", "QubesOutgoing");
  // A GnuPG home with a secret key file in it, as gpg-setup leaves one.
  mkdirSync(join(state, "gnupg", "private-keys-v1.d"), { recursive: true, mode: 0o700 });
  writeFileSync(join(state, "gnupg", "private-keys-v1.d", "ABCD.key"), "SECRET-GPG-KEY\n");
  writeFileSync(join(state, "audit.log"), "", { flag: "a" });

  mkdirSync(join(exported, "okdir", "sub"), { recursive: true });
  writeFileSync(join(exported, "ok.txt"), "fine to send\n");
  writeFileSync(join(exported, "okdir", "a.txt"), "alpha\n");
  writeFileSync(join(exported, "okdir", "sub", "b.txt"), "beta\n");
  symlinkSync("../a.txt", join(exported, "okdir", "sub", "to-a")); // stays inside: sent as a link

  symlinkSync(join(state, "device.key"), join(exported, "key-link"));
  symlinkSync("../../state/device.key", join(exported, "key-rel-link"));
  symlinkSync(state, join(exported, "state-link"));
  symlinkSync(join(state, "gnupg"), join(exported, "gnupg-link"));
  linkSync(join(state, "device.key"), join(exported, "hard-key"));
  mkdirSync(join(exported, "leaky"));
  writeFileSync(join(exported, "leaky", "harmless.txt"), "x\n");
  symlinkSync(join(state, "device.key"), join(exported, "leaky", "abs-link"));
  mkdirSync(join(exported, "leaky-up"));
  symlinkSync("../../../state/device.key", join(exported, "leaky-up", "up-link"));
  mkdirSync(join(exported, "hardtree"));
  linkSync(join(state, "gnupg", "private-keys-v1.d", "ABCD.key"), join(exported, "hardtree", "copy.key"));
}, 60_000);

afterAll(cleanup);

function request(...paths: string[]): Uint8Array {
  const list = Buffer.from(paths.join("\0"));
  const r = Buffer.alloc(4 + list.length);
  r.writeUInt32BE(list.length, 0);
  list.copy(r, 4);
  return r;
}

/** One call from "work" (whatever sys-remote claims); a refusal must send nothing at all. */
async function refused(paths: string[], message: string, why: string): Promise<void> {
  const r = await hostCall(host, { source: "work", service: "qubesair.CopyFrom" }, request(...paths));
  expect([r.status, r.stdout.length, r.stderr]).toEqual([1, 0, `qubesair.CopyFrom: ${message}\n`]);
  await agent.waitLine(new RegExp(`copy-from-refused source=work why=${why}$`));
  await agent.waitLine(/call source=work service=qubesair\.CopyFrom\+ decision=allow .*status=1/);
}

describe("qubesair.CopyFrom with a policy that allows everything", () => {
  test("the state directory, the key files, the GnuPG home, the audit log and the policy by absolute path", async () => {
    const outside = (p: string) =>
      `"${p}" is outside the export directory ${exported}; name a path inside it (relative paths start there)`;
    for (const p of [
      join(state, "device.key"),
      state,
      join(state, "gnupg"),
      join(state, "gnupg", "private-keys-v1.d", "ABCD.key"),
      join(state, "audit.log"),
      join(state, "hosts.json"),
      join(agent.dir, "policy"),
      "/etc/passwd",
    ]) {
      await refused([p], outside(p), "outside");
    }
  });

  test('".." out of the export directory, also behind its absolute prefix', async () => {
    const dotdot = (p: string) => `"${p}": ".." is not allowed; name a path inside the export directory`;
    for (const p of [
      "../../state/device.key",
      "okdir/../../../state",
      `${exported}/../../state/device.key`,
    ]) {
      await refused([p], dotdot(p), "dot-dot");
    }
  });

  test("a symbolic link to a key file, absolute or relative, is refused, not followed or sent", async () => {
    const link = (p: string) =>
      `"${p}" is a symbolic link; the device follows no links out of the export directory`;
    await refused(["key-link"], link("key-link"), "link");
    await refused(["key-rel-link"], link("key-rel-link"), "link");
    await refused([join(exported, "key-link")], link(join(exported, "key-link")), "link");
    await refused(["state-link"], link("state-link"), "link");
  });

  test("a symlinked subdirectory is not walked through", async () => {
    const through = (p: string) =>
      `"${p}" goes through a symbolic link; the device follows no links out of the export directory`;
    await refused(["state-link/device.key"], through("state-link/device.key"), "link");
    await refused(
      ["gnupg-link/private-keys-v1.d/ABCD.key"],
      through("gnupg-link/private-keys-v1.d/ABCD.key"),
      "link",
    );
  });

  test("a hard link to the device key, or to a GnuPG secret inside a directory, is refused", async () => {
    await refused(["hard-key"], `"hard-key" is the device key; the device never sends it`, "protected");
    await refused(
      ["hardtree"],
      `"hardtree/copy.key" is a hard link to a file in the GnuPG home; the device never sends it`,
      "protected",
    );
  });

  test("a good file first and a bad one later: nothing of the good one is sent either", async () => {
    await refused(
      ["ok.txt", "okdir", "key-link"],
      `"key-link" is a symbolic link; the device follows no links out of the export directory`,
      "link",
    );
    // a link deep inside a requested directory that points out refuses the whole request
    const r = await hostCall(host, { service: "qubesair.CopyFrom" }, request("ok.txt", "leaky"));
    expect([r.status, r.stdout.length, r.stderr]).toEqual([
      1,
      0,
      'qubesair.CopyFrom: "leaky/abs-link" is a symbolic link that points out of what is being sent\n',
    ]);
    const up = await hostCall(host, { service: "qubesair.CopyFrom" }, request("leaky-up"));
    expect([up.status, up.stdout.length, up.stderr]).toEqual([
      1,
      0,
      'qubesair.CopyFrom: "leaky-up/up-link" is a symbolic link that points out of what is being sent\n',
    ]);
  });

  test("the export directory itself, and empty names, are refused", async () => {
    for (const p of [".", exported, `${exported}/`]) {
      await refused(
        [p],
        `"${p}" is the export directory itself; name the files or directories inside it`,
        "export-root",
      );
    }
  });

  test("a file and a directory inside the export directory still copy, with the inner link as a link", async () => {
    const [toUnpacker, fromCall] = memoryPair();
    const [toCall, fromUnpacker] = memoryPair();
    await toCall.write(request("ok.txt", `${exported}/okdir`));
    const dest = join(makeDir(), "in");
    const unpacked = unpackQfile(fromCall, toCall, { dir: dest });
    let stderr = "";
    const channel = host.vchan.open(
      encodeCallRequest({ source: "work", target: DEVICE, service: "qubesair.CopyFrom", arg: "" }),
    );
    const { status } = await runCall(channel, {
      stdin: fromUnpacker,
      stdout: { write: (d) => toUnpacker.write(d) },
      stderr: {
        write: async (d) => {
          stderr += Buffer.from(d).toString();
        },
      },
    });
    await toUnpacker.closeWrite();
    expect((await unpacked).code).toBe(0);
    expect([status, stderr]).toEqual([0, ""]);
    expect(readFileSync(join(dest, "ok.txt"), "utf8")).toBe("fine to send\n");
    expect(readFileSync(join(dest, "okdir", "a.txt"), "utf8")).toBe("alpha\n");
    expect(readFileSync(join(dest, "okdir", "sub", "b.txt"), "utf8")).toBe("beta\n");
    expect(readlinkSync(join(dest, "okdir", "sub", "to-a"))).toBe("../a.txt");
  });
});

describe("exportDir in the configuration", () => {
  async function runWith(exportDir: (dir: string) => string) {
    const dir = makeDir();
    const { configPath } = writeAgentFiles({ dir, config: { exportDir: exportDir(dir) } });
    return { dir, ...(await runCli(["run", "--config", configPath], { HOME: join(dir, "home") })) };
  }

  test("one that contains the state directory, or is it, stops the agent at start with the fix", async () => {
    const parent = await runWith((d) => d);
    expect(parent.code).toBe(2);
    expect(parent.stderr).toContain(
      `"exportDir" contains the agent's state directory (${join(parent.dir, "state")}); set it to a directory of its own`,
    );
    const same = await runWith((d) => join(d, "state"));
    expect(same.code).toBe(2);
    expect(same.stderr).toContain(
      `"exportDir" is the agent's state directory (${join(same.dir, "state")}) or lies inside it`,
    );
    const gnupg = await runWith((d) => join(d, "state", "gnupg", "export"));
    expect(gnupg.code).toBe(2);
  });

  test("one that reaches the state directory through a link starts, and then refuses every copy", async () => {
    const dir = makeDir();
    symlinkSync(dir, join(dir, "up"));
    const sneaky = await startAgent({
      dir,
      policy: ALLOW_ALL,
      config: { exportDir: join(dir, "up", "state") },
    });
    const c = (await pairHost(sneaky)).c;
    const r = await hostCall(c, { service: "qubesair.CopyFrom" }, request("device.key"));
    expect([r.status, r.stdout.length, r.stderr]).toEqual([
      1,
      0,
      `qubesair.CopyFrom: the export directory ${join(dir, "up", "state")} is the agent's state directory or lies inside it once links are resolved; the device sends nothing until exportDir names a directory of its own\n`,
    ]);
    await sneaky.waitLine(/copy-from-refused source=work why=export-dir$/);
    // Each running agent's log reader holds a pool thread: stop this one before the next starts.
    sneaky.proc.kill("SIGTERM");
    await sneaky.exited;
  });

  test("one that is itself a symbolic link is refused at copy time", async () => {
    const dir = makeDir();
    mkdirSync(join(dir, "home"), { recursive: true });
    symlinkSync(join(dir, "home"), join(dir, "out"));
    const linked = await startAgent({ dir, policy: ALLOW_ALL, config: { exportDir: join(dir, "out") } });
    const c = (await pairHost(linked)).c;
    writeFileSync(join(dir, "home", "visible.txt"), "behind the link\n");
    const r = await hostCall(c, { service: "qubesair.CopyFrom" }, request("visible.txt"));
    expect([r.status, r.stdout.length]).toEqual([1, 0]);
    expect(r.stderr).toBe(
      `qubesair.CopyFrom: the export directory ${join(dir, "out")} is a symbolic link or not a directory; set exportDir to a real directory\n`,
    );
    linked.proc.kill("SIGTERM");
    await linked.exited;
  });
});
