/**
 * `qubesctl` reaches remote qubes (issue 10 point 4): real salt-ssh (Salt 3008.5 from PyPI)
 * applies a state on a real agent through sys-remote's real daemon and CLI, with an ssh wrapper
 * that carries each ssh and scp over `qubes-air call DEVICE qubes.VMRootShell`
 * (fixtures/ssh-over-qrexec/ssh-wrapper.ts), as Qubes' wrapper does over qrexec-client-vm.
 * The device's shipped policy refuses it; a rule that allows it lets salt-ssh apply the state,
 * and the second apply changes nothing. Loopback only; every wait has a deadline.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { isQubeName } from "../../core/qrexec/names.ts";
import {
  type Agent,
  BUN,
  cleanup,
  cli,
  DEVICE,
  type Host,
  pairedHost,
  ROOT,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";
import { lacking } from "../helpers/requires.ts";

const SALT_TIMEOUT_MS = 180_000;
const DEVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CONTENT = "managed by salt-ssh over qubes.VMRootShell\n";

function missingTools(): string | null {
  for (const tool of ["python3", "bash", "flock"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} (scripts/system-deps.sh)`;
  }
  return null;
}

/** The Salt venv the formula's tests use too (scripts/salt-venv.sh: cached, locked, idempotent). */
function saltVenv(): string {
  const r = spawnSync("bash", [join(ROOT, "scripts/salt-venv.sh")], { encoding: "utf8", timeout: 600_000 });
  if (r.status !== 0) throw new Error(`building the Salt venv failed:\n${r.stderr}`);
  return r.stdout.trim();
}

interface SaltRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

describe.skipIf(lacking(missingTools()))("salt-ssh over qubes.VMRootShell", () => {
  let env: Record<string, string>;
  let work: string;
  let target: string;
  let policyDir: string;
  let venv: string;
  let agent: Agent;
  let host: Host;

  beforeAll(async () => {
    const started = Date.now();
    venv = saltVenv();
    console.log(`salt venv ready in ${Date.now() - started} ms: ${venv}`);
    // The agent gets the PATH a device's unit gives it (the harness passes ours on): salt's shim
    // takes a python3 that is a shell script (a developer's pyenv shim) for a Software
    // Collections wrapper and then needs variables a device does not set.
    const ours = process.env.PATH;
    process.env.PATH = DEVICE_PATH;
    let paired: Awaited<ReturnType<typeof pairedHost>>;
    try {
      paired = await pairedHost();
    } finally {
      process.env.PATH = ours;
    }
    host = paired.host;
    agent = paired.agent;
    policyDir = join(agent.dir, "policy");
    work = tempDir("qa-salt-ssh-");
    target = tempDir("qa-salt-target-");
    // ssh, scp and qubes-air as salt-ssh finds them on PATH: the wrapper, and sys-remote's CLI.
    const bin = join(work, "bin");
    const shims: Record<string, string> = {
      ssh: `exec '${BUN}' '${ROOT}/fixtures/ssh-over-qrexec/ssh-wrapper.ts' ssh "$@"`,
      scp: `exec '${BUN}' '${ROOT}/fixtures/ssh-over-qrexec/ssh-wrapper.ts' scp "$@"`,
      "qubes-air": `exec '${BUN}' '${ROOT}/host/main.ts' "$@"`,
    };
    for (const d of [bin, join(work, "srv"), join(work, "conf")]) mkdirSync(d, { recursive: true });
    for (const [name, body] of Object.entries(shims)) {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    }
    env = { ...host.env, PATH: `${bin}:${venv}/bin:${ours}` };
    writeFileSync(
      join(work, "srv", "rootshell.sls"),
      `managed-file:\n  file.managed:\n    - name: ${target}/managed.txt\n    - contents: ${JSON.stringify(CONTENT.trimEnd())}\n`,
    );
    // The thin Salt goes into a temp dir on the device, so a refused run can be seen to leave none.
    writeFileSync(
      join(work, "roster"),
      `${DEVICE}:\n  host: ${DEVICE}\n  user: root\n  thin_dir: ${target}/thin\n`,
    );
    const salt = join(work, "salt");
    writeFileSync(
      join(work, "conf", "master"),
      [
        `root_dir: ${salt}`,
        `pki_dir: ${salt}/pki`,
        `cachedir: ${salt}/cache`,
        `log_file: ${salt}/master.log`,
        `ssh_log_file: ${salt}/ssh.log`,
        `file_roots: {base: [${work}/srv]}`,
        `pillar_roots: {base: [${work}/pillar]}`,
        // no key to make: there is no ssh below the wrapper
        "ssh_priv: agent-forwarding",
        "",
      ].join("\n"),
    );
  }, 900_000);

  afterAll(cleanup);

  /** A rule before the shipped one; the source the device sees is the CLI's qube name (hostname). */
  function allowRootShell(): void {
    const source = isQubeName(hostname()) ? hostname() : "sys-remote";
    writeFileSync(join(policyDir, "30-user.policy"), `qubes.VMRootShell  *  ${source}  @anyvm  allow\n`);
  }

  async function saltSsh(...args: string[]): Promise<SaltRun> {
    const argv = [
      join(venv, "bin", "salt-ssh"),
      "-c",
      join(work, "conf"),
      "--roster-file",
      join(work, "roster"),
      "--ignore-host-keys",
      "--out=json",
      "--static",
      DEVICE,
      ...args,
    ];
    const proc = Bun.spawn(argv, { env, stdout: "pipe", stderr: "pipe", stdin: "ignore", cwd: work });
    const timer = setTimeout(() => proc.kill("SIGKILL"), SALT_TIMEOUT_MS);
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    clearTimeout(timer);
    return { code, stdout, stderr };
  }

  function stateResult(r: SaltRun): { result: boolean; changes: Record<string, unknown> } {
    const out = JSON.parse(r.stdout)[DEVICE];
    const entries = Object.values(out) as { result: boolean; changes: Record<string, unknown> }[];
    expect(entries).toHaveLength(1);
    return entries[0]!;
  }

  test(
    "the shipped policy refuses qubes.VMRootShell: salt-ssh fails saying so, nothing changes",
    async () => {
      for (const f of ["30-test.policy"]) rmSync(join(policyDir, f), { force: true });
      copyFileSync(
        join(ROOT, "core/qrexec/default-policy/50-qubes-air.policy"),
        join(policyDir, "50-qubes-air.policy"),
      );
      const r = await saltSsh("state.apply", "rootshell");
      expect(r.code).not.toBe(0);
      // salt-ssh reports the call's own status and message: 126, "Request refused" (the CLI's).
      const out = JSON.parse(r.stdout)[DEVICE];
      expect(out.retcode).toBe(126);
      expect(out.stderr).toContain("Request refused");
      // …refused by the shipped deny line, not for want of a rule.
      const logged = await agent.waitLine(
        /call .*service=qubes\.VMRootShell\+\S* .*decision=deny .*rule=(\S+)/,
      );
      expect(logged[1]).toStartWith("50-qubes-air.policy:");
      expect(existsSync(join(target, "managed.txt"))).toBe(false);
      expect(existsSync(join(target, "thin"))).toBe(false);
    },
    SALT_TIMEOUT_MS + 10_000,
  );

  test(
    "allowed for the caller: salt-ssh applies the state, and a second apply changes nothing",
    async () => {
      allowRootShell();
      const first = await saltSsh("state.apply", "rootshell");
      expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0);
      const applied = stateResult(first);
      expect(applied.result).toBe(true);
      expect(applied.changes).toHaveProperty("diff");
      expect(readFileSync(join(target, "managed.txt"), "utf8")).toBe(CONTENT);

      const second = await saltSsh("state.apply", "rootshell");
      expect(second.code, second.stderr).toBe(0);
      const again = stateResult(second);
      expect(again.result).toBe(true);
      expect(again.changes).toEqual({});
    },
    2 * SALT_TIMEOUT_MS + 10_000,
  );

  test("the agent's own bash answers: a service file of the same name never runs in its place", async () => {
    const file = join(agent.dir, "rpc", "qubes.VMRootShell");
    writeFileSync(file, "#!/bin/sh\necho service-file\n");
    chmodSync(file, 0o755);
    const r = await cli(host, ["call", DEVICE, "qubes.VMRootShell"], 'echo "$0 as $(id -u)"\n');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`/bin/bash as ${process.getuid?.()}\n`);
  }, 60_000);
});
