/**
 * The device's own OpenSSH ssh-agent, which holds the SSH keys and makes the signatures that
 * `qubes.SshAgent` (ssh-agent-service.ts) lets through: `ssh-agent -D -a <sshDir>/agent.sock`, a
 * child of the agent, started on first use, with every private key in <sshDir>/keys loaded by
 * `ssh-add` (again whenever the key files change, e.g. after `qubes-air-agent ssh-setup`).
 * The socket sits in the 0700 ssh directory, and ssh-agent itself serves only its own uid: only
 * this agent talks to it, and only after the filter.
 * Must never: expose the socket outside the ssh directory, or pass the caller's environment to
 * ssh-agent or ssh-add.
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { type ChildProcess, platform } from "../../../platform/index.ts";
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
  private child: ChildProcess | null = null;
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
    const child = this.child;
    this.child = null;
    if (child) {
      child.kill("SIGTERM");
      await child.exited;
    }
  }

  private async start(): Promise<void> {
    await platform.mkdirp(this.dir, 0o700);
    await fsp.rm(this.socket, { force: true });
    const child = await platform.spawn([this.tools.sshAgent ?? "ssh-agent", "-D", "-a", this.socket], {
      env: sshEnv(),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "ignore",
    });
    // -D prints "SSH_AUTH_SOCK=...; export SSH_AUTH_SOCK;" once it listens.
    const listening = await withTimeout(untilLine(child.stdout!, "SSH_AUTH_SOCK="), START_MS);
    if (!listening) {
      child.kill("SIGKILL");
      throw new Error("ssh-agent did not start");
    }
    void drainQuietly(child.stdout!);
    this.child = child;
    this.loaded = "";
    void child.exited.then((e) => {
      if (this.child === child) {
        this.child = null;
        this.log("ssh-agent-exited", { code: e.code, signal: e.signal });
      }
    });
    this.log("ssh-agent-started", { pid: child.pid });
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

async function untilLine(src: ByteSource, marker: string): Promise<boolean> {
  let seen = "";
  for (let c = await src.read(); c !== null; c = await src.read()) {
    seen += new TextDecoder().decode(c);
    if (seen.includes(marker)) return true;
    if (seen.length > 4096) return false;
  }
  return false;
}

async function drainQuietly(src: ByteSource): Promise<void> {
  try {
    while ((await src.read()) !== null) {}
  } catch {}
}

function withTimeout(p: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
