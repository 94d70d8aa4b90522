/**
 * The device's own OpenSSH ssh-agent, which holds the SSH keys and makes the signatures that
 * `qubes.SshAgent` (ssh-agent-service.ts) lets through: `ssh-agent -a <sshDir>/agent.sock`, tied
 * to the agent's life (start()), started on first use, with every private key in <sshDir>/keys loaded by
 * `ssh-add` (again whenever the key files change, e.g. after `qubes-air-agent ssh-setup`).
 * The socket sits in the 0700 ssh directory, and ssh-agent itself serves only its own uid: only
 * this agent talks to it, and only after the filter.
 * Must never: expose the socket outside the ssh directory, or pass the caller's environment to
 * ssh-agent or ssh-add.
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { platform } from "../../../platform/index.ts";
import type { ByteSource } from "../../../transport/transport.ts";
import type { Log } from "../../log.ts";

/** How long ssh-agent may take to say it listens, and ssh-add to load the keys. */
const START_MS = 15_000;

export interface SshTools {
  /** Default "ssh-agent", "ssh-add" from PATH. */
  readonly sshAgent?: string;
  readonly sshAdd?: string;
}

/** The private key files in `keysDir` (everything but *.pub), sorted. */
export async function keyFiles(keysDir: string): Promise<string[]> {
  const names = await fsp.readdir(keysDir).catch(() => [] as string[]);
  return names
    .filter((n) => !n.endsWith(".pub") && !n.startsWith("."))
    .sort()
    .map((n) => join(keysDir, n));
}

export function sshEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/", LC_ALL: "C", ...extra };
}

export class DeviceSshAgent {
  private child: HeldAgent | null = null;
  private starting: Promise<void> | null = null;
  /** Names, sizes and times of the key files last loaded: a change loads them again. */
  private loaded = "";
  /** Key loads run one after another: two calls at once must not both run ssh-add. */
  private loading: Promise<void> = Promise.resolve();
  readonly socket: string;
  readonly keysDir: string;

  constructor(
    readonly dir: string,
    private readonly log: Log,
    private readonly tools: SshTools = {},
  ) {
    this.socket = join(dir, "agent.sock");
    this.keysDir = join(dir, "keys");
  }

  /** The socket of a running ssh-agent holding the current keys. Throws when it cannot start. */
  async ready(): Promise<string> {
    // An ssh-agent that died on its own (its socket is gone) is started again.
    if (this.child !== null && !(await platform.stat(this.socket))?.isSocket) await this.stop();
    if (this.child === null) {
      this.starting ??= this.start().finally(() => {
        this.starting = null;
      });
      await this.starting;
    }
    const load = this.loading.then(() => this.loadKeys());
    this.loading = load.catch(() => {});
    await load;
    return this.socket;
  }

  async stop(): Promise<void> {
    const held = this.child;
    this.child = null;
    if (held) await held.stop();
  }

  /**
   * `ssh-agent -a SOCK sh -c 'echo ready $SSH_AGENT_PID; exec cat'`: ssh-agent listens before it
   * runs the command, so "ready" means the socket takes connections. The command's stdin is a pipe
   * from this process that is never written: when this process ends in any way (SIGKILL too), cat
   * reads EOF and exits, and ssh-agent, which watches its command's process, exits after it (within
   * its 10 s check). stop() ends both at once.
   */
  private async start(): Promise<void> {
    await platform.mkdirp(this.dir, 0o700);
    await fsp.rm(this.socket, { force: true });
    const child = await platform.spawn(
      [
        this.tools.sshAgent ?? "ssh-agent",
        "-a",
        this.socket,
        "sh",
        "-c",
        'echo "ready $SSH_AGENT_PID"; exec cat',
      ],
      { env: sshEnv(), stdin: "pipe", stdout: "pipe", stderr: "ignore" },
    );
    const line = await withTimeout(firstLine(child.stdout!), START_MS);
    const pid = Number(/^ready (\d+)$/.exec(line ?? "")?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 1) {
      child.kill("SIGKILL");
      throw new Error("ssh-agent did not start");
    }
    void drainQuietly(child.stdout!);
    const held: HeldAgent = {
      pid,
      stop: async () => {
        await child.stdin?.closeWrite().catch(() => {});
        child.kill("SIGTERM");
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // already gone
        }
        await child.exited;
      },
    };
    this.child = held;
    this.loaded = "";
    void child.exited.then((e) => {
      if (this.child === held) {
        this.child = null;
        this.log("ssh-agent-exited", { code: e.code, signal: e.signal });
      }
    });
    this.log("ssh-agent-started", { pid });
  }

  private async loadKeys(): Promise<void> {
    const files = await keyFiles(this.keysDir);
    const stamps = await Promise.all(
      files.map(async (f) => {
        const s = await platform.stat(f);
        return `${f}:${s?.size}:${s?.mtimeMs}`;
      }),
    );
    const stamp = stamps.join("\n");
    if (stamp === this.loaded) return;
    const env = sshEnv({ SSH_AUTH_SOCK: this.socket });
    const sshAdd = this.tools.sshAdd ?? "ssh-add";
    await run([sshAdd, "-q", "-D"], env); // keys removed from the directory go too
    if (files.length > 0) {
      const code = await run([sshAdd, "-q", "--", ...files], env);
      if (code !== 0) this.log("ssh-add-failed", { code, keys: files.length });
    }
    this.loaded = stamp;
    this.log("ssh-keys-loaded", { keys: files.length });
  }
}

async function run(argv: string[], env: Record<string, string>): Promise<number | null> {
  const child = await platform.spawn(argv, { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  const timer = setTimeout(() => child.kill("SIGKILL"), START_MS);
  const e = await child.exited;
  clearTimeout(timer);
  return e.code;
}

interface HeldAgent {
  readonly pid: number;
  stop(): Promise<void>;
}

async function firstLine(src: ByteSource): Promise<string | null> {
  let seen = "";
  for (let c = await src.read(); c !== null; c = await src.read()) {
    seen += new TextDecoder().decode(c);
    const nl = seen.indexOf("\n");
    if (nl >= 0) return seen.slice(0, nl);
    if (seen.length > 256) return null;
  }
  return null;
}

async function drainQuietly(src: ByteSource): Promise<void> {
  try {
    while ((await src.read()) !== null) {}
  } catch {}
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
