/**
 * A throwaway OpenSSH server on 127.0.0.1 for bench/run.ts, and the one-way transfer
 * `ssh -c CIPHER host 'cat > /dev/null'` measured the same way as our link: the clock starts once
 * the remote command runs (so connection setup and authentication are excluded, as our handshake
 * is), and stops when ssh exits after the remote side has read everything.
 *
 * The server gets its own host key, client key, authorized_keys and config in a temp dir
 * (`-D -e -f config`, UsePAM no, StrictModes no, compression off) and is killed by stop().
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import { join } from "node:path";

export const SSH_CIPHERS = [
  "chacha20-poly1305@openssh.com",
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
] as const;

export interface Sshd {
  readonly port: number;
  readonly dir: string;
  readonly version: string;
  stop(): void;
}

const SSHD_PATHS = ["/usr/sbin/sshd", "/usr/bin/sshd", "/usr/local/sbin/sshd"];

/** The sshd binary, or null when OpenSSH's server is not installed. */
export function findSshd(): string | null {
  for (const p of SSHD_PATHS) if (fs.existsSync(p)) return p;
  return null;
}

/** A port that was free a moment ago (the kernel's pick for port 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function run(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  if (r.status !== 0) throw new Error(`${argv.join(" ")} failed: ${String(r.stderr).trim()}`);
  return `${r.stdout}${r.stderr}`;
}

export async function startSshd(sshdPath: string): Promise<Sshd> {
  const dir = fs.mkdtempSync(join(os.tmpdir(), "qubes-air-bench-ssh-"));
  let child: ChildProcess | null = null;
  const stop = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    child = null;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_key")]);
    fs.copyFileSync(join(dir, "client_key.pub"), join(dir, "authorized_keys"));
    // sshd refuses to start without its privilege separation directory (Debian creates it at boot).
    if (process.getuid?.() === 0) fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const port = await freePort();
    fs.writeFileSync(
      join(dir, "sshd_config"),
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${join(dir, "host_key")}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        "PidFile none",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "Compression no",
        "PrintMotd no",
        "UseDNS no",
        "",
      ].join("\n"),
    );
    const version = run(["ssh", "-V"]).trim();
    const proc = spawn(sshdPath, ["-D", "-e", "-f", join(dir, "sshd_config")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error(`sshd did not start: ${log.trim()}`)), 5000);
      proc.stderr!.on("data", (c: Buffer) => {
        log += c.toString();
        if (log.includes("Server listening")) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`sshd exited (${code}): ${log.trim()}`));
      });
    });
    proc.stderr!.resume(); // keep draining its log
    return { port, dir, version, stop };
  } catch (e) {
    stop();
    throw e;
  }
}

/** Client options for the throwaway server: its key, no prompts, no host-key store, no compression. */
export function sshClientArgs(sshd: Sshd): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    join(sshd.dir, "client_key"),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "Compression=no",
    "-o",
    "LogLevel=ERROR",
  ];
}

export interface TransferResult {
  bytes: number;
  seconds: number;
  mbPerSecond: number;
}

/**
 * One-way transfer into `cat > /dev/null` for `seconds`, from one reused block of random bytes
 * (random so that nothing could compress it; compression is off anyway).
 */
export async function sshTransfer(
  sshd: Sshd,
  cipher: string,
  seconds: number,
  block: Uint8Array,
): Promise<TransferResult> {
  const args = [
    ...sshClientArgs(sshd),
    "-c",
    cipher,
    "-p",
    String(sshd.port),
    "127.0.0.1",
    "echo ready; exec cat > /dev/null",
  ];
  const proc = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number>((resolve) => proc.once("exit", (code) => resolve(code ?? -1)));
  proc.stdin!.on("error", () => {}); // reported through the exit code instead
  await new Promise<void>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("ready")) resolve();
    });
    void exited.then((code) =>
      reject(new Error(`ssh exited (${code}) before the transfer: ${stderr.trim()}`)),
    );
  });
  const t0 = performance.now();
  let sent = 0;
  const stdin = proc.stdin!;
  while (performance.now() - t0 < seconds * 1000) {
    sent += block.length;
    if (!stdin.write(block)) await new Promise<void>((resolve) => stdin.once("drain", resolve));
  }
  stdin.end();
  const code = await exited;
  const elapsed = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`ssh -c ${cipher} exited with ${code}: ${stderr.trim()}`);
  return { bytes: sent, seconds: elapsed, mbPerSecond: sent / elapsed / 1e6 };
}
