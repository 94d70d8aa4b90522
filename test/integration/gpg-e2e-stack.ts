/**
 * The whole stack for the end-to-end tests (gpg-e2e*.test.ts, confirm-*.test.ts), all real
 * processes: the agent (`qubes-air-agent run`, TCP) with the shipped default policy, its device
 * key made by `qubes-air-agent gpg-setup` in its temp stateDir, and the simulated socket button
 * (confirm kind "socket") that the test presses; sys-remote's daemon and CLI paired with it by
 * token; and for split-gpg2 a client qube's GnuPG home whose S.gpg-agent is a forwarder running
 * `qubes-air call <device> qubes.Gpg2` per connection, with the connection as stdin/stdout (as
 * split-gpg2's client side forwards its socket through qrexec).
 * Not part of the product; waiting is on log lines and exits, no sleeps.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import {
  BUN,
  cleanEnv,
  cleanup,
  cli,
  DEVICE,
  type Host,
  type Logged,
  makeHost,
  ROOT,
  type RunResult,
  ramDir,
  run,
  spawnLogged,
  startDaemon,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";
import { platform } from "../../platform/index.ts";
import type { Listener } from "../../platform/platform.ts";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";

export { cleanup, cli, DEVICE, type RunResult, run };

const AGENT = join(ROOT, "agent/main.ts");
const HOST = join(ROOT, "host/main.ts");
export const UID = "Device E2E <device@example.invalid>";

export interface StackOptions {
  readonly gpg?: boolean;
  /** Make an SSH key on the device with `qubes-air-agent ssh-setup --generate`. */
  readonly ssh?: boolean;
  readonly confirmTimeoutSeconds?: number;
  readonly confirmConflictWindowSeconds?: number;
  /** Extra policy files (sorted before the shipped 50-qubes-air.policy), name -> text. */
  readonly policy?: Record<string, string>;
  readonly services?: Record<string, string>;
  /** Extra environment for sys-remote (daemon, CLI, relay): DISPLAY, a PATH with notify-send. */
  readonly hostEnv?: Record<string, string>;
  /** Merged into the agent's config. */
  readonly config?: Record<string, unknown>;
  /** Run the agent under this command (it gets the agent's argv after it), e.g. a namespace. */
  readonly agentWrapper?: (dir: string) => string[];
  /** Run the agent's CLI commands after it started (pair-token) under this, e.g. nsenter. */
  readonly agentCliWrapper?: (agent: Logged) => string[];
  /**
   * Seal the key under this PIN (`gpg-setup --pin`, the PIN on stdin); the opened home goes to
   * a directory on /dev/shm (keyLock.unlockedHome) unless o.config says otherwise.
   */
  readonly pin?: string;
}

export interface Stack {
  readonly dir: string;
  readonly stateDir: string;
  readonly agent: Logged;
  readonly host: Host;
  readonly daemon: Logged;
  /** Where the agent opens a sealed key (pin stacks, on /dev/shm; "" otherwise). */
  readonly unlockedHome: string;
  /** The armored public key from `gpg-setup --export` (gpg stacks). */
  readonly publicKey: string;
  /** The authorized_keys line from `ssh-setup --export` (ssh stacks). */
  readonly sshPublicKey: string;
  readonly homes: string[];
  /** Presses the simulated button: "taken" if a prompt was waiting, else "ignored". */
  press(verdict: "approve" | "deny"): Promise<string>;
  /** Waits for the agent's next prompt (confirm-request) not yet seen; returns its log line. */
  nextPrompt(): Promise<string>;
  /** nextPrompt(), then answers it on the button; returns the prompt line. */
  answerNextPrompt(verdict: "approve" | "deny"): Promise<string>;
  /** The agent's log lines matching re, so far. */
  logged(re: RegExp): string[];
  close(): Promise<void>;
}

const agentEnv = (dir: string) => ({
  ...cleanEnv(),
  HOME: join(dir, "home"),
  QUBES_AIR_SIMULATED_CONFIRM: "1",
});

export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const dir = tempDir("qa-e2e-");
  for (const sub of ["policy", "rpc", "home", "state"])
    mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  copyFileSync(
    join(ROOT, "core/qrexec/default-policy/50-qubes-air.policy"),
    join(dir, "policy/50-qubes-air.policy"),
  );
  for (const [name, text] of Object.entries(o.policy ?? {})) writeFileSync(join(dir, "policy", name), text);
  for (const [name, text] of Object.entries(o.services ?? {}))
    writeFileSync(join(dir, "rpc", name), text, { mode: 0o755 });
  const button = join(dir, "button.sock");
  const unlockedHome = o.pin === undefined ? "" : join(ramDir("qa-unlocked-"), "gnupg");
  const keyLock =
    o.pin === undefined
      ? {}
      : { keyLock: { unlockedHome, ...((o.config?.keyLock as Record<string, unknown> | undefined) ?? {}) } };
  const configPath = join(dir, "agent.json");
  writeFileSync(
    configPath,
    JSON.stringify({
      name: DEVICE,
      stateDir: join(dir, "state"),
      listen: { tcp: "127.0.0.1:0" },
      serviceDirs: [join(dir, "rpc")],
      policyDir: join(dir, "policy"),
      incomingDir: join(dir, "home"),
      socket: join(dir, "agent.sock"),
      handshakeMinIntervalMs: 0,
      confirm: { kind: "socket", path: button },
      confirmTimeoutSeconds: o.confirmTimeoutSeconds ?? 30,
      // The stack's presses come within milliseconds of each prompt, which no person manages:
      // with the product's 1 s, a test's next client would always meet the after-approval
      // conflict window (manager.test.ts and confirm-ask.test.ts test the rule itself).
      confirmConflictWindowSeconds: o.confirmConflictWindowSeconds ?? 0,
      ...o.config,
      ...keyLock,
    }),
  );
  const homes: string[] = [];
  let publicKey = "";
  if (o.gpg) {
    const exported = join(dir, "device.asc");
    const pin = o.pin === undefined ? [] : ["--pin"];
    const setup = await run(
      [BUN, AGENT, "gpg-setup", "--config", configPath, "--generate", UID, "--export", exported, ...pin],
      agentEnv(dir),
      o.pin === undefined ? undefined : `${o.pin}\n`,
    );
    if (setup.code !== 0) throw new Error(`gpg-setup failed: ${setup.stderr}`);
    publicKey = readFileSync(exported, "utf8");
    homes.push(join(dir, "state/gnupg"), join(dir, "state/gnupg-primary"));
    if (o.pin !== undefined) homes.push(unlockedHome);
  }
  let sshPublicKey = "";
  if (o.ssh) {
    const exported = join(dir, "device-ssh.pub");
    const setup = await run(
      [
        BUN,
        AGENT,
        "ssh-setup",
        "--config",
        configPath,
        "--generate",
        "--comment",
        "device@pi-gpg",
        "--export",
        exported,
      ],
      agentEnv(dir),
    );
    if (setup.code !== 0) throw new Error(`ssh-setup failed: ${setup.stderr}`);
    sshPublicKey = readFileSync(exported, "utf8");
  }
  const agent = spawnLogged(
    [...(o.agentWrapper?.(dir) ?? []), BUN, AGENT, "run", "--config", configPath],
    agentEnv(dir),
  );
  const port = Number((await agent.waitLine(/listening tcp=\S+ port=(\d+)/))[1]);
  const token = await run(
    [...(o.agentCliWrapper?.(agent) ?? []), BUN, AGENT, "pair-token", "--config", configPath],
    agentEnv(dir),
  );
  if (token.code !== 0) throw new Error(`pair-token failed: ${token.stderr}`);
  const host = makeHost(o.hostEnv);
  const daemon = await startDaemon(host);
  const paired = await cli(host, [
    "pair",
    DEVICE,
    "--tcp",
    `127.0.0.1:${port}`,
    "--token",
    token.stdout.trim(),
  ]);
  if (paired.code !== 0) throw new Error(`pair failed: ${paired.stderr}`);
  await daemon.waitLine(new RegExp(`${DEVICE}: up`));

  let promptsSeen = 0;
  const press = async (verdict: "approve" | "deny") => {
    const s = await platform.unixConnect(button);
    try {
      await s.write(new TextEncoder().encode(`${verdict}\n`));
      let reply = "";
      while (!reply.includes("\n")) {
        const c = await s.read();
        if (!c) break;
        reply += new TextDecoder().decode(c);
      }
      return reply.trim();
    } finally {
      s.close();
    }
  };
  const stack: Stack = {
    dir,
    stateDir: join(dir, "state"),
    unlockedHome,
    agent,
    host,
    daemon,
    publicKey,
    sshPublicKey,
    homes,
    press,
    nextPrompt: () => waitForNth(agent, /confirm-request /, ++promptsSeen),
    async answerNextPrompt(verdict) {
      const line = await stack.nextPrompt();
      const answer = await press(verdict);
      if (answer !== "taken") throw new Error(`the press was ${answer}: ${line}`);
      return line;
    },
    logged: (re) => agent.lines.filter((l) => re.test(l)),
    async close() {
      for (const h of homes)
        await run(["gpgconf", "--homedir", h, "--kill", "all"], cleanEnv()).catch(() => {});
      cleanup();
    },
  };
  return stack;
}

/** The n-th (1-based) line of `logged` matching re, polled until it appears (15 s). */
export async function waitForNth(logged: Logged, re: RegExp, n: number, ms = 15_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = logged.lines.filter((l) => re.test(l));
    if (found.length >= n) return found[n - 1]!;
    if (Date.now() > deadline)
      throw new Error(`no ${n}th line ${re} within ${ms} ms:\n${logged.lines.join("\n")}`);
    await Bun.sleep(20);
  }
}

/** A client qube's GnuPG home that knows (and fully trusts) the device's public key. */
export async function clientHome(stack: Stack, tag = "cli"): Promise<{ home: string; fingerprint: string }> {
  const home = tempDir(`qa-${tag}-`);
  writeFileSync(join(home, "gpg.conf"), "no-autostart\n");
  await gpgOk(home, ["--import"], stack.publicKey);
  const listed = await gpgOk(home, ["--with-colons", "--list-keys"]);
  const fingerprint = /^fpr:+([0-9A-F]{64}|[0-9A-F]{40}):/m.exec(listed.stdout)![1]!;
  await gpgOk(home, ["--import-ownertrust"], `${fingerprint}:6:\n`);
  stack.homes.push(home);
  return { home, fingerprint };
}

export function gpgRun(home: string, args: string[], input: string | Uint8Array = ""): Promise<RunResult> {
  return run(
    ["gpg", "--homedir", home, "--batch", "--no-tty", ...args],
    { ...cleanEnv(), LC_ALL: "C" },
    input,
  );
}

export async function gpgOk(
  home: string,
  args: string[],
  input: string | Uint8Array = "",
): Promise<RunResult> {
  const r = await gpgRun(home, args, input);
  if (r.code !== 0) throw new Error(`gpg ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r;
}

/** `qubes-air call [--source S] DEVICE SERVICE` as a process with piped stdio. */
export function spawnCall(stack: Stack, service: string, source: string): Subprocess<"pipe", "pipe", "pipe"> {
  return Bun.spawn([BUN, HOST, "call", "--source", source, DEVICE, service], {
    env: stack.host.env,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    cwd: ROOT,
  });
}

/** Runs `qubes-air call` with `io` as its stdin/stdout/stderr; resolves with its exit status. */
export async function callWithStreams(
  stack: Stack,
  service: string,
  source: string,
  io: { stdin: Pick<ByteSource, "read">; stdout: ByteSink; stderr?: ByteSink },
): Promise<number> {
  const proc = spawnCall(stack, service, source);
  void (async () => {
    try {
      for (let c = await io.stdin.read(); c; c = await io.stdin.read()) {
        proc.stdin.write(c);
        await proc.stdin.flush();
      }
    } catch {}
    await Promise.resolve(proc.stdin.end()).catch(() => {});
  })();
  const pipe = async (from: ReadableStream<Uint8Array>, to: ByteSink | undefined) => {
    for await (const c of from) await to?.write(c).catch(() => {});
    await to?.closeWrite().catch(() => {});
  };
  await Promise.all([pipe(proc.stdout, io.stdout), pipe(proc.stderr, io.stderr)]);
  return proc.exited;
}

/** Serves the client's S.gpg-agent: each connection becomes one `qubes-air call … qubes.Gpg2`. */
export async function forwardAgentSocket(
  stack: Stack,
  home: string,
  source = "work",
): Promise<{ statuses: number[]; close(): Promise<void> }> {
  const dirs = await run(["gpgconf", "--homedir", home, "--list-dirs", "agent-socket"], cleanEnv());
  const path = decodeURIComponent(dirs.stdout.trim());
  const statuses: number[] = [];
  const listener: Listener = await platform.unixListen(path, (conn) => {
    void callWithStreams(stack, "qubes.Gpg2", source, { stdin: conn, stdout: conn })
      .then((s) => statuses.push(s))
      .finally(() => conn.close());
  });
  return { statuses, close: () => listener.close() };
}

export { HOST };
