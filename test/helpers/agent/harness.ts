/**
 * Test harness for test/integration/agent-*.test.ts (not part of the agent; nothing in
 * agent/main.ts imports it): runs the real agent as a process in a temporary directory and
 * reads its log; host-side.ts plays the host in the test process.
 * Waiting is event-driven (log lines, process exit): no sleeps.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { platform } from "../../../platform/index.ts";
import type { ChildProcess } from "../../../platform/platform.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
export const MAIN = resolve(HERE, "../../../agent/main.ts");
export const DEVICE = "pi-gpg";
const DEFAULT_POLICY = resolve(HERE, "../../../core/qrexec/default-policy/50-qubes-air.policy");

export interface AgentOptions {
  /** Extra policy files: name -> text (the shipped default is always there as 50-qubes-air). */
  policy?: Record<string, string>;
  /** Service scripts (made executable): file name -> text. */
  services?: Record<string, string>;
  /** Merged into the config. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Reuse a directory (restart the agent with the same state). */
  dir?: string;
  /** The host's end of a pty pair whose other end the config's listen.tty names. */
  hostTty?: string;
}

export interface AgentProcess {
  readonly dir: string;
  readonly configPath: string;
  readonly socket: string;
  /** The TCP port, or the host's tty path when the agent listens on a tty. */
  readonly port: number;
  readonly via: number | string;
  readonly proc: ChildProcess;
  readonly lines: string[];
  /** The next log line (from the start, or after the last one matched) matching `re`. */
  waitLine(re: RegExp): Promise<RegExpMatchArray>;
  readonly exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();
const dirs = new Set<string>();

export function cleanup(): void {
  for (const p of running) p.kill("SIGKILL");
  running.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/**
 * Starts `bun agent/main.ts ARGS` (the runtime running this test) through the platform layer;
 * with AGENT_NODE_BUNDLE=FILE (made by `bun build --target=node agent/main.ts`), `node FILE ARGS`.
 * `redirect` gives files (or a FIFO) for stdin/stdout/stderr, set up by /bin/sh before exec (the
 * pid stays the agent's). The test reads the agent's output through files, not pipes: under
 * Bun 1.4.5 the test process sometimes stopped receiving a child's pipe output while bytes sat
 * in the socket's receive queue (seen with both node:child_process and Bun.spawn).
 */
export async function spawnAgentCli(
  args: string[],
  env: Record<string, string> = {},
  redirect: { stdin?: string; stdout?: string; stderr?: string } = {},
): Promise<ChildProcess> {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) merged[k] = v;
  merged.QA_IN = redirect.stdin ?? "/dev/null";
  merged.QA_OUT = redirect.stdout ?? "/dev/null";
  merged.QA_ERR = redirect.stderr ?? "/dev/null";
  const bundle = process.env.AGENT_NODE_BUNDLE;
  const argv = bundle ? ["node", bundle, ...args] : [process.execPath, MAIN, ...args];
  const shell = 'exec "$0" "$@" <"$QA_IN" >"$QA_OUT" 2>"$QA_ERR"';
  const p = await platform.spawn(["/bin/sh", "-c", shell, ...argv], {
    env: merged,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  running.add(p);
  void p.exited.then(() => running.delete(p));
  return p;
}

export function makeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "qa-agent-"));
  dirs.add(dir);
  return dir;
}

export function writeAgentFiles(o: AgentOptions): { dir: string; configPath: string } {
  const dir = o.dir ?? makeDir();
  for (const sub of ["policy", "rpc", "home", "state"])
    mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  chmodSync(join(dir, "state"), 0o700);
  writeFileSync(join(dir, "policy", "50-qubes-air.policy"), readFileSync(DEFAULT_POLICY, "utf8"));
  for (const [name, text] of Object.entries(o.policy ?? {})) writeFileSync(join(dir, "policy", name), text);
  for (const [name, text] of Object.entries(o.services ?? {})) {
    writeFileSync(join(dir, "rpc", name), text);
    chmodSync(join(dir, "rpc", name), 0o755);
  }
  const config = {
    name: DEVICE,
    stateDir: join(dir, "state"),
    listen: { tcp: "127.0.0.1:0" },
    serviceDirs: [join(dir, "rpc")],
    policyDir: join(dir, "policy"),
    incomingDir: join(dir, "home"),
    socket: join(dir, "agent.sock"),
    handshakeMinIntervalMs: 0,
    ...o.config,
  };
  const configPath = join(dir, "agent.json");
  writeFileSync(configPath, JSON.stringify(config));
  return { dir, configPath };
}

let serial = 0;

export async function runCli(args: string[], env: Record<string, string> = {}, stdin?: Uint8Array) {
  const base = join(makeDir(), `cli-${serial++}`);
  const files = { stdin: `${base}.in`, stdout: `${base}.out`, stderr: `${base}.err` };
  writeFileSync(files.stdin, stdin ?? new Uint8Array(0));
  const p = await spawnAgentCli(args, env, files);
  const { code } = await p.exited;
  return { code, stdout: readFileSync(files.stdout, "utf8"), stderr: readFileSync(files.stderr, "utf8") };
}

export async function startAgent(o: AgentOptions = {}): Promise<AgentProcess> {
  const { dir, configPath } = writeAgentFiles(o);
  const fifo = join(dir, `agent-log-${serial++}.fifo`);
  execFileSync("mkfifo", [fifo]);
  const proc = await spawnAgentCli(
    ["run", "--config", configPath],
    { HOME: join(dir, "home"), ...o.env },
    {
      stderr: fifo,
    },
  );
  // A blocking read of a FIFO runs in the thread pool: no poll readiness involved.
  const log = createReadStream(fifo, { encoding: "utf8" });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  let consumed = 0;
  let buffer = "";
  log.on("data", (t) => {
    buffer += t;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      if (process.env.AGENT_LOG) process.stderr.write(`[agent] ${line}\n`);
      for (const w of [...waiters]) {
        const m = line.match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          consumed = lines.length;
          w.resolve(m);
        }
      }
    }
  });
  const exited = proc.exited.then((info) => info.code);
  const waitLine = (re: RegExp) => {
    for (let i = consumed; i < lines.length; i++) {
      const m = lines[i]!.match(re);
      if (m) {
        consumed = i + 1;
        return Promise.resolve(m);
      }
    }
    return new Promise<RegExpMatchArray>((resolve, reject) => {
      waiters.push({ re, resolve });
      void exited.then((code) =>
        reject(new Error(`agent exited (${code}) before ${re}:\n${lines.join("\n")}`)),
      );
    });
  };
  const port = Number((await waitLine(/listening (?:tcp=\S+ port=(\d+)|tty=)/))[1] ?? 0);
  const via = o.hostTty ?? port;
  return { dir, configPath, socket: join(dir, "agent.sock"), port, via, proc, lines, waitLine, exited };
}
