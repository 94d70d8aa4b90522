/**
 * Security point 2: a full state filesystem never lets an approved operation run unrecorded,
 * and file copies cannot fill it. The whole stack with real processes (gpg-e2e-stack.ts): the
 * agent runs in a private mount and PID namespace (`unshare -m -p -f --kill-child`, as root)
 * whose state dir and QubesIncoming are bind mounts of ONE 8 MiB tmpfs, so received files and
 * the audit log compete for the same space. When the test's processes are killed the PID
 * namespace dies with every process in it (gpg-agent included), and with it the mount: nothing
 * leaks onto the machine.
 *
 *   1. Approved operations of each kind (a split-gpg2 signature, a v1 signature, an `ask` call).
 *   2. A compromised sys-remote sends file copies: each stops at its limit (bytes, files) or at
 *      the reserve with a clear message, leaves no temporary file, and the reserve stays free.
 *   3. The same operations again: all recorded.
 *   4. While an approved `ask` call is held running, the filesystem is filled by a writer that is
 *      not a file copy (the test, as root) and the audit log's last page is used up by denials:
 *      the call's result cannot be written; then a gpg2 signature, a v1 signature and an ask
 *      call are approved on the button and all three are refused, nothing run.
 *   5. Space comes back: the missing result goes in first as result-unrecorded, and
 *      `qubes-air logs` says so. Requests recorded = operations that ran, none without a result.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeSync,
} from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AuditRecord } from "../../core/audit/record.ts";
import { verifyAuditLog } from "../../core/audit/verify.ts";
import { EDQUOT, encodeFileHeader, FILE_HEADER_SIZE } from "../../core/qrexec/qfile.ts";
import type { ByteSink } from "../../transport/transport.ts";
import { type V1CallOptions, v1Call } from "../fixtures/gpg/v1-client.ts";
import {
  callWithStreams,
  cli,
  clientHome,
  DEVICE,
  forwardAgentSocket,
  gpgRun,
  type Stack,
  startStack,
  waitForNth,
} from "./gpg-e2e-stack.ts";

setDefaultTimeout(120_000);

const ENOSPC = 28;
const MiB = 1024 * 1024;
const LIMITS = { maxBytes: 3 * MiB, maxFiles: 40, reserveBytes: 2 * MiB, reservePercent: 0 };

/** The namespace needs root (CAP_SYS_ADMIN) and util-linux unshare; under CI it must be there. */
function namespaceProblem(): string | null {
  if (process.getuid?.() !== 0) return "not root";
  try {
    execFileSync("unshare", ["-m", "-p", "-f", "--kill-child", "true"], { stdio: "ignore" });
    return null;
  } catch {
    return "unshare -m -p failed";
  }
}
const problem = namespaceProblem();
if (problem && process.env.CI) throw new Error(`audit-disk-full needs root and unshare under CI: ${problem}`);
const maybe = problem ? describe.skip : describe;

const NS_SCRIPT = `set -e
d="$1"; shift
mkdir -p "$d/fs"
mount -t tmpfs -o size=8m,mode=0700 qa-audit-state "$d/fs"
mkdir "$d/fs/state" "$d/fs/home"
cp -a "$d/state/." "$d/fs/state/"
cp -a "$d/home/." "$d/fs/home/"
mount --bind "$d/fs/state" "$d/state"
mount --bind "$d/fs/home" "$d/home"
exec "$@"`;

let stack: Stack;
let client: { home: string; fingerprint: string };
let forwarder: Awaited<ReturnType<typeof forwardAgentSocket>>;
/** Operations that actually ran on the device: signatures made, ask scripts run. */
let ran = 0;

/** A path as the agent sees it (inside its mount namespace). */
const inside = (p: string) => `/proc/${stack.agent.proc.pid}/root${p}`;
const incoming = () => inside(join(stack.dir, "home", "QubesIncoming", "work"));
const free = () => {
  const s = statfsSync(inside(stack.stateDir));
  return s.bavail * s.bsize;
};

beforeAll(async () => {
  if (problem) return;
  stack = await startStack({
    gpg: true,
    policy: {
      "30-test.policy": "test.Ask  *  @anyvm  @anyvm  ask\ntest.Hold  *  @anyvm  @anyvm  ask\n",
    },
    services: {
      // Runs on the device; leaves its mark outside the small filesystem ($HOME/.. is the
      // stack's directory, on the machine's own disk).
      "test.Ask": '#!/bin/sh\ntouch "$HOME/../marks/ran-$1"\necho ran\n',
      // Says it started, then waits for the test's go (two FIFOs outside the small filesystem).
      "test.Hold":
        '#!/bin/sh\necho started > "$HOME/../marks/started"\nread go < "$HOME/../marks/go"\necho held\n',
    },
    config: { fileCopy: LIMITS },
    agentWrapper: (dir) => [
      "unshare",
      "-m",
      "-p",
      "-f",
      "--kill-child",
      "--",
      "sh",
      "-c",
      NS_SCRIPT,
      "qa-ns",
      dir,
    ],
    // --root: the agent's own root too, not the mount namespace's; they differ when the tests
    // themselves run in a chroot (setns alone would leave the chroot and miss our bun).
    agentCliWrapper: (agent) => ["nsenter", "--target", String(agent.proc.pid), "--mount", "--root", "--"],
  });
  client = await clientHome(stack);
  forwarder = await forwardAgentSocket(stack, client.home, "work");
}, 180_000);

afterAll(async () => {
  await forwarder?.close();
  await stack?.close();
});

const marksDir = () => join(stack.dir, "marks");

async function gpg2Sign(verdict: "approve" | "deny" = "approve") {
  const running = gpgRun(client.home, ["--armor", "--detach-sign"], "a message\n");
  await stack.answerNextPrompt(verdict);
  return running;
}

async function v1Sign() {
  const o: V1CallOptions = { args: ["-b", "-a"], stdin: new TextEncoder().encode("v1 message\n") };
  const running = v1Call((io) => callWithStreams(stack, "qubes.Gpg", "work", io), o);
  await stack.answerNextPrompt("approve");
  return running;
}

async function ask(
  service: "test.Ask" | "test.Hold",
  arg: string,
  source = "alpha",
  verdict: "approve" | "deny" = "approve",
) {
  const running = cli(stack.host, ["call", "--source", source, DEVICE, `${service}+${arg}`], "");
  await stack.answerNextPrompt(verdict);
  return running;
}

/** Fills the small filesystem to its last page, as any program on the device could. */
function fillUp(path: string): void {
  const fd = openSync(path, "w");
  const chunk = new Uint8Array(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
  } finally {
    closeSync(fd);
  }
}

/** A qfile stream: `count` files of `size` bytes each. */
function copyStream(count: number, size: number, tag: string): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const name = Buffer.from(`${tag}-${i}.bin\0`);
    parts.push(
      encodeFileHeader({
        namelen: name.length,
        mode: 0o100644,
        filelen: BigInt(size),
        atime: 1_700_000_000,
        atimeNsec: 0,
        mtime: 1_700_000_000,
        mtimeNsec: 0,
      }),
      name,
      new Uint8Array(size).fill(0x41),
    );
  }
  parts.push(new Uint8Array(FILE_HEADER_SIZE));
  return Buffer.concat(parts);
}

/** qvm-copy's call through sys-remote; the device may stop reading before the stream ends. */
async function copy(stream: Uint8Array): Promise<{ code: number; stderr: string }> {
  let sent = false;
  let stderr = "";
  const sink = (keep: boolean): ByteSink => ({
    description: "test",
    closed: Promise.resolve(),
    write: async (d) => {
      if (keep) stderr += new TextDecoder().decode(d);
    },
    closeWrite: async () => {},
    close: () => {},
  });
  const stdin = {
    read: async () => {
      if (sent) return null;
      sent = true;
      return stream;
    },
  };
  const code = await callWithStreams(stack, "qubes.Filecopy", "work", {
    stdin,
    stdout: sink(false),
    stderr: sink(true),
  });
  return { code, stderr };
}

const partials = () => readdirSync(incoming()).filter((n) => n.startsWith(".qfile-"));

async function fetchedLog(): Promise<{
  records: AuditRecord[];
  text: string;
  unrecorded: { late: number[]; open: number[] };
}> {
  const r = await cli(stack.host, ["logs", "--source", "sys-remote", "--json", DEVICE]);
  expect(r.code).toBe(0);
  const json = JSON.parse(r.stdout);
  return { records: json.records, text: r.stdout, unrecorded: json.unrecorded };
}
const requests = (records: AuditRecord[]) => records.filter((r) => r.result === "requested");

maybe("a full state filesystem (security point 2)", () => {
  test("1. approved operations of each kind: each has its request and its result record", async () => {
    mkdirSync(marksDir());
    expect((await gpg2Sign()).code).toBe(0);
    expect((await v1Sign()).exit).toBe(0);
    expect((await ask("test.Ask", "one")).code).toBe(0);
    ran += 3;
    const { records, unrecorded } = await fetchedLog();
    expect(requests(records).length).toBe(ran);
    expect(unrecorded).toEqual({ late: [], open: [] });
  });

  test("2. file copies stop at their limits with a clear message, leave no temporary file, and never take the reserve", async () => {
    const over = await copy(copyStream(1, 4 * MiB, "big"));
    expect(over.code).toBe(EDQUOT);
    expect(over.stderr).toContain(`File copy: over the limit of ${LIMITS.maxBytes} bytes per copy`);
    expect(existsSync(join(incoming(), "big-0.bin"))).toBe(false);

    const many = await copy(copyStream(LIMITS.maxFiles + 5, 16, "many"));
    expect(many.code).toBe(EDQUOT);
    expect(many.stderr).toContain(`File copy: over the limit of ${LIMITS.maxFiles} files per copy`);

    // Copies under the per-copy limit, until the reserve stops one.
    const results: number[] = [];
    for (let i = 0; i < 8 && !results.includes(ENOSPC); i++) {
      const r = await copy(copyStream(1, 2 * MiB + 512 * 1024, `fill${i}`));
      results.push(r.code);
      if (r.code === ENOSPC) {
        expect(r.stderr).toContain("File copy: no space left above the reserve");
        expect(existsSync(join(incoming(), `fill${i}-0.bin`))).toBe(false);
      }
    }
    expect(results.at(-1)).toBe(ENOSPC);
    expect(results.slice(0, -1).every((c) => c === 0)).toBe(true);
    expect(partials()).toEqual([]);
    expect(free()).toBeGreaterThanOrEqual(LIMITS.reserveBytes);
    await stack.agent.waitLine(/filecopy-limit source=work limit=space/);
  });

  test("3. with the copies stopped at the reserve, every approved operation is still recorded", async () => {
    expect((await gpg2Sign()).code).toBe(0);
    expect((await v1Sign()).exit).toBe(0);
    expect((await ask("test.Ask", "two")).code).toBe(0);
    ran += 3;
    const { records, unrecorded } = await fetchedLog();
    expect(requests(records).length).toBe(ran);
    expect(unrecorded).toEqual({ late: [], open: [] });
  });

  test("4. the filesystem really full: approved operations are refused, nothing runs, nothing unrecorded", async () => {
    execFileSync("mkfifo", [join(marksDir(), "started"), join(marksDir(), "go")]);
    // An approved call starts (its request record is on disk) and is held running…
    const hold = ask("test.Hold", "x");
    expect(await readFile(join(marksDir(), "started"), "utf8")).toBe("started\n");
    // …while the filesystem fills up, by a writer that is not a file copy.
    fillUp(inside(join(stack.dir, "home", "filler")));
    // The audit log's last page still has room for a few records: denials (written when they
    // can be, nothing runs either way) use it up until one does not fit.
    const failedBefore = stack.logged(/audit-append-failed/).length;
    for (let i = 0; i < 40 && stack.logged(/audit-append-failed/).length === failedBefore; i++) {
      expect((await ask("test.Ask", "p", `pad${i}`, "deny")).code).toBe(126);
    }
    expect(stack.logged(/audit-append-failed/).length).toBeGreaterThan(failedBefore);
    // The held call ends now: its result record (longer than a denial) cannot be written.
    await writeFile(join(marksDir(), "go"), "go\n");
    expect((await hold).stdout).toBe("held\n");
    ran += 1;
    await stack.agent.waitLine(/audit-result-unwritable service=test.Hold/);

    const before = (await fetchedLog()).records.length;
    const g2 = await gpg2Sign();
    expect(g2.code).not.toBe(0);
    expect(g2.stderr).toContain("Not operational");
    const v1 = await v1Sign();
    expect(v1.exit).toBe(1);
    expect(v1.outputs.join("")).toContain("the device cannot write its audit log");
    const asked = await ask("test.Ask", "three");
    expect(asked.code).toBe(126);
    expect(asked.stderr).toContain("the device cannot write its audit log");
    expect(existsSync(join(marksDir(), "ran-three"))).toBe(false);
    await waitForNth(stack.agent, /audit-request-unwritable/, 3);
    // Three presses approved, three refusals, no record written: the log did not move.
    expect((await fetchedLog()).records.length).toBe(before);
  });

  test("5. space back: the missing result goes in first; `qubes-air logs` says so; records = operations run", async () => {
    rmSync(inside(join(stack.dir, "home", "filler")));
    expect(free()).toBeGreaterThan(LIMITS.reserveBytes);
    expect((await gpg2Sign()).code).toBe(0);
    ran += 1;
    const { records, unrecorded } = await fetchedLog();
    const fillReq = records.find((r) => r.service === "test.Hold" && r.result === "requested")!;
    const late = records.find((r) => r.operation === "result-unrecorded")!;
    expect(late).toMatchObject({
      service: "test.Hold",
      result: "exit 0",
      detail: `request #${fillReq.seq}; arg=x`,
    });
    // It went in before the next request.
    const nextReq = records.filter((r) => r.result === "requested").at(-1)!;
    expect(late.seq).toBeLessThan(nextReq.seq);
    expect(unrecorded).toEqual({ late: [fillReq.seq], open: [] });
    expect(requests(records).length).toBe(ran);
    const marks = readdirSync(marksDir())
      .filter((n) => n.startsWith("ran-"))
      .sort();
    expect(marks).toEqual(["ran-one", "ran-two"]);

    const text = await cli(stack.host, ["logs", "--source", "sys-remote", DEVICE]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      `1 result(s) could not be recorded when the operation ended (request #${fillReq.seq})`,
    );
    // The log on the device's disk verifies: no torn line from the failed writes.
    expect(verifyAuditLog(readFileSync(inside(join(stack.stateDir, "audit.log")), "utf8")).ok).toBe(true);
  });
});
