/**
 * The parts of host/paths.ts that need no file system: the state directory and the daemon
 * socket's candidate paths. The relay binary imports only this (no node:fs: start-up time).
 */
import { homedir } from "node:os";
import { join } from "node:path";

export type Env = Readonly<Record<string, string | undefined>>;

export function stateDirOf(env: Env, flag?: string): string {
  if (flag) return flag;
  if (env.QUBES_AIR_STATE) return env.QUBES_AIR_STATE;
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), ".local", "share");
  return join(data, "qubes-air");
}

/**
 * The socket of the daemon run by the sys-remote package's system unit: systemd makes
 * /run/qubes-air (RuntimeDirectory=, owned by the daemon's user, 0700) for as long as the daemon
 * runs and tells the daemon this path (QUBES_AIR_SOCKET); the CLI and the relay, run by the same
 * user without that variable, try it first. No login session (PAMName=) is needed for it.
 */
export const SYSTEM_SOCKET = "/run/qubes-air/daemon.sock";

/**
 * The socket paths socketPathOf chooses between, best first, decided without touching the file
 * system: the relay tries them in order instead of importing node:fs (start-up time, see
 * host/relay/bun-io.ts). An explicit path (flag, QUBES_AIR_SOCKET) is the only candidate; else
 * the system daemon's socket, then the user's runtime dir, then the state dir.
 */
export function socketCandidatesOf(
  env: Env,
  stateDir: string,
  flag?: string,
  uid = currentUid(),
  system = SYSTEM_SOCKET,
): string[] {
  if (flag) return [flag];
  if (env.QUBES_AIR_SOCKET) return [env.QUBES_AIR_SOCKET];
  if (env.XDG_RUNTIME_DIR) return [system, join(env.XDG_RUNTIME_DIR, "qubes-air", "daemon.sock")];
  const fallback = join(stateDir, "daemon.sock");
  return uid >= 0
    ? [system, join(`/run/user/${uid}`, "qubes-air", "daemon.sock"), fallback]
    : [system, fallback];
}

export function currentUid(): number {
  return typeof process.getuid === "function" ? process.getuid() : -1;
}
