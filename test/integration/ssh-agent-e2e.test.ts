/**
 * Split-SSH end to end (issue 13, part 4), all real processes: the device's key is made on the
 * device by `qubes-air-agent ssh-setup` and never leaves it; the client qube's side is the stock
 * one of Qubes' split-SSH, `socat UNIX-LISTEN:$SSH_AUTH_SOCK,fork EXEC:"qrexec-client-vm DEVICE
 * qubes.SshAgent"`, where qrexec-client-vm is the test's stand-in for dom0's qrexec: it starts
 * sys-remote's relay as qrexec would (argv, QREXEC_* environment, the connection as
 * stdin/stdout, stderr to the caller); and the client programs are stock `ssh` and `ssh-add`.
 * ssh signs in to a throwaway sshd with the device's key only after a press for each signature;
 * a denied press makes ssh fail; add, remove, remove-all and lock are refused with
 * SSH_AGENT_FAILURE and change nothing; every signature (and the first refusal per connection)
 * is in the device's audit log, with the user and the host key the signature was for.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  BUN,
  cleanEnv,
  type Logged,
  ROOT,
  type RunResult,
  spawnLogged,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";
import { SSHD_CANDIDATES, type Sshd, startSshd } from "../../fixtures/throwaway-sshd.ts";
import { platform } from "../../platform/index.ts";
import { lacking } from "../helpers/requires.ts";
import { cli, DEVICE, run, type Stack, startStack } from "./gpg-e2e-stack.ts";

setDefaultTimeout(120_000);

const sshdPath = SSHD_CANDIDATES.find((p) => existsSync(p));
const missing = !sshdPath
  ? "sshd (openssh-server)"
  : !Bun.which("socat")
    ? "socat"
    : !Bun.which("ssh") || !Bun.which("ssh-agent")
      ? "ssh, ssh-add, ssh-agent (openssh-client)"
      : null;

describe.skipIf(lacking(missing))("split-SSH: stock ssh through qubes.SshAgent", () => {
  let stack: Stack;
  let sshd: Sshd;
  let client: string;
  const forwarders = new Map<string, { sock: string; socat: Logged }>();

  beforeAll(async () => {
    stack = await startStack({ ssh: true });
    sshd = await startSshd(sshdPath!, stack.sshPublicKey);
    client = tempDir("qa-ssh-client-");
    writeFileSync(join(client, "known_hosts"), sshd.knownHosts);
    // The client qube's qrexec-client-vm, as dom0 and qrexec would carry the call: to the relay
    // in sys-remote, as the calling qube (QREXEC_REMOTE_DOMAIN), to the RemoteVM DEVICE.
    const qrexec = join(client, "bin", "qrexec-client-vm");
    await platform.mkdirp(join(client, "bin"), 0o755);
    writeFileSync(
      qrexec,
      `#!/bin/sh
# qrexec-client-vm TARGET SERVICE: what dom0 and qrexec do for it, in one step
[ $# -eq 2 ] || { echo "usage: qrexec-client-vm TARGET SERVICE" >&2; exit 2; }
arg="$1+$2+"
export QREXEC_SERVICE_ARGUMENT="$arg" QREXEC_SERVICE_FULL_NAME="qubesair.NoiseProxy+$arg"
export QREXEC_REMOTE_DOMAIN="$CLIENT_QUBE" QUBESDB_STUB="/remote/$1=$1"
exec '${BUN}' '${join(ROOT, "host/relay/main.ts")}' "$arg"
`,
    );
    chmodSync(qrexec, 0o755);
  }, 180_000);

  afterAll(async () => {
    await stack?.close();
  });

  /** The client qube `qube`'s SSH_AUTH_SOCK: the stock split-SSH socat line. */
  async function forwarder(qube: string): Promise<string> {
    const had = forwarders.get(qube);
    if (had) return had.sock;
    const sock = join(client, `${qube}.sock`);
    const socat = spawnLogged(
      ["socat", `UNIX-LISTEN:${sock},fork`, `EXEC:"qrexec-client-vm ${DEVICE} qubes.SshAgent"`],
      { ...stack.host.env, PATH: `${join(client, "bin")}:${stack.host.env.PATH}`, CLIENT_QUBE: qube },
    );
    for (let i = 0; i < 500 && !existsSync(sock); i++) await Bun.sleep(10);
    if (!existsSync(sock)) throw new Error("socat did not listen");
    forwarders.set(qube, { sock, socat });
    return sock;
  }

  const clientEnv = (sock: string) => ({ ...cleanEnv(), HOME: client, SSH_AUTH_SOCK: sock });

  function ssh(sock: string): Promise<RunResult> {
    return run(
      [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        `UserKnownHostsFile=${join(client, "known_hosts")}`,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-p",
        String(sshd.port),
        `${sshd.user}@127.0.0.1`,
        "echo signed-in",
      ],
      clientEnv(sock),
    );
  }

  const sshAdd = (sock: string, args: string[]) => run(["ssh-add", ...args], clientEnv(sock));

  /** One raw request on the client socket; the raw answer. */
  async function raw(sock: string, message: Uint8Array): Promise<number[]> {
    const s = await platform.unixConnect(sock);
    try {
      await s.write(message);
      const got: number[] = [];
      while (
        got.length < 4 ||
        got.length < 4 + ((got[0]! << 24) | (got[1]! << 16) | (got[2]! << 8) | got[3]!)
      ) {
        const c = await s.read();
        if (!c) break;
        got.push(...c);
      }
      return got;
    } finally {
      s.close();
    }
  }

  test("the key lives only on the device; ssh-add -l lists it without a press", async () => {
    expect(readdirSync(client).filter((f) => f.startsWith("id_"))).toEqual([]);
    expect(existsSync(join(stack.stateDir, "ssh", "keys", "id_ed25519"))).toBe(true);
    const sock = await forwarder("work");
    const prompts = stack.logged(/confirm-request /).length;
    const listed = await sshAdd(sock, ["-l"]);
    expect(listed.code).toBe(0);
    writeFileSync(join(client, "device.pub"), stack.sshPublicKey);
    const fp = (await run(["ssh-keygen", "-l", "-f", join(client, "device.pub")], cleanEnv())).stdout.split(
      " ",
    )[1]!;
    expect(listed.stdout).toBe(`256 ${fp} device@pi-gpg (ED25519)\n`);
    expect(stack.logged(/confirm-request /).length).toBe(prompts);
  });

  test("stock ssh signs in with the device's key after a press; the caller's stderr says so", async () => {
    const sock = await forwarder("work");
    const pending = ssh(sock);
    const prompt = await stack.nextPrompt();
    expect(prompt).toMatch(
      /text="\[\w{4}\] work asks for ssh-auth \(qubes\.SshAgent\) with ssh-ed25519 SHA256:\S+ device@pi-gpg sha256 [0-9a-f]{8}…[0-9a-f]{8}"/,
    );
    expect(await stack.press("approve")).toBe("taken");
    const r = await pending;
    expect([r.code, r.stdout]).toEqual([0, "signed-in\n"]);
    // The signature's user and host key are logged as the client sent them; the host key is the
    // throwaway sshd's, bound to the session by session-bind@openssh.com.
    const signed = await stack.agent.waitLine(/ssh-sign client=work operation=ssh-auth .*decision=approved/);
    expect(signed[0]).toContain(
      `user=${sshd.user} service=ssh-connection host=ssh-ed25519 ${sshd.hostFingerprint}`,
    );
    // The relay wrote the prompt to the caller's stderr (socat's, here) with the device's code.
    const code = /code=(\w{4})/.exec(prompt)![1]!;
    await forwarders
      .get("work")!
      .socat.waitLine(new RegExp(`qubes-air: ${DEVICE}: waiting for a press \\[${code}\\].*ssh-auth`));
    await forwarders.get("work")!.socat.waitLine(new RegExp(`qubes-air: ${DEVICE}: approved \\[${code}\\]`));
  });

  test("each signature needs its own press", async () => {
    const sock = await forwarder("work");
    for (let i = 0; i < 2; i++) {
      const pending = ssh(sock);
      await stack.answerNextPrompt("approve");
      expect((await pending).stdout).toBe("signed-in\n");
    }
  });

  test("a denied press makes ssh fail", async () => {
    const sock = await forwarder("personal");
    const pending = ssh(sock);
    await stack.answerNextPrompt("deny");
    const r = await pending;
    expect(r.code).toBe(255);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("Permission denied (publickey)");
    await stack.agent.waitLine(/ssh-sign client=personal operation=ssh-auth .*decision=denied/);
  });

  test("remove-all, add, remove and lock from the client are refused and change nothing", async () => {
    const sock = await forwarder("untrusted");
    const prompts = stack.logged(/confirm-request /).length;
    const removeAll = await sshAdd(sock, ["-D"]);
    expect(removeAll.code).not.toBe(0);
    const extra = join(client, "extra_key");
    await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", extra], cleanEnv());
    const added = await sshAdd(sock, [extra]);
    expect(added.code).not.toBe(0);
    expect(added.stderr).toContain("Could not add identity");
    const removed = await sshAdd(sock, ["-d", `${extra}.pub`]);
    expect(removed.code).not.toBe(0);
    const FAILURE = [0, 0, 0, 1, 5];
    const str = (s: string) => [0, 0, 0, s.length, ...new TextEncoder().encode(s)];
    const frame = (body: number[]) => Uint8Array.from([0, 0, 0, body.length, ...body]);
    expect(await raw(sock, frame([22, ...str("pw")]))).toEqual(FAILURE); // lock
    expect(await raw(sock, frame([23, ...str("pw")]))).toEqual(FAILURE); // unlock
    expect(await raw(sock, frame([27, ...str("query")]))).toEqual(FAILURE); // another extension
    const listed = await sshAdd(sock, ["-l"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split("\n")).toHaveLength(1);
    expect(listed.stdout).toContain("device@pi-gpg");
    expect(stack.logged(/confirm-request /).length).toBe(prompts);
    for (const what of [
      "remove-all-identities",
      "add-identity",
      "remove-identity",
      "lock",
      "unlock",
      "extension",
    ])
      await stack.agent.waitLine(new RegExp(`ssh-agent-refused client=untrusted request=${what}`));
  });

  test("every signature is in the audit log, with its user and host key; refusals too", async () => {
    const r = await cli(stack.host, ["logs", "--json", "--source", "sys-remote", DEVICE]);
    expect(r.code).toBe(0);
    const records = (JSON.parse(r.stdout).records as Record<string, string>[]).filter(
      (x) => x.service === "qubes.SshAgent",
    );
    const results = records.filter((x) => x.operation === "ssh-auth" && x.result !== "requested");
    expect(results.map((x) => `${x.client} ${x.decision} ${x.result}`)).toEqual([
      "work approved ok",
      "work approved ok",
      "work approved ok",
      "personal denied refused",
    ]);
    for (const x of results) expect(x.detail).toContain(`host=ssh-ed25519 ${sshd.hostFingerprint}`);
    expect(records.filter((x) => x.result === "requested")).toHaveLength(3);
    expect(records.some((x) => x.client === "untrusted" && x.result === "refused")).toBe(true);
  });

  test("the device's ssh-agent does not outlive the agent, even one killed with SIGKILL", async () => {
    const started = stack.logged(/ssh-agent-started pid=\d+/);
    expect(started).toHaveLength(1); // one device ssh-agent served every connection
    const pid = Number(/pid=(\d+)/.exec(started[0]!)![1]);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true);
    stack.agent.proc.kill("SIGKILL");
    await stack.agent.exited;
    // ssh-agent notices that its command (fed by the agent's pipe) ended: within its 10 s check.
    const deadline = Date.now() + 30_000;
    while (alive() && Date.now() < deadline) await Bun.sleep(100);
    expect(alive()).toBe(false);
  });
});
