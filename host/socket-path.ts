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
 * The socket paths socketPathOf chooses between, best first, decided without touching the file
 * system: the relay tries them in order instead of importing node:fs (start-up time, see
 * host/relay/bun-io.ts).
 */
export function socketCandidatesOf(env: Env, stateDir: string, flag?: string, uid = currentUid()): string[] {
  if (flag) return [flag];
  if (env.QUBES_AIR_SOCKET) return [env.QUBES_AIR_SOCKET];
  if (env.XDG_RUNTIME_DIR) return [join(env.XDG_RUNTIME_DIR, "qubes-air", "daemon.sock")];
  const fallback = join(stateDir, "daemon.sock");
  return uid >= 0 ? [join(`/run/user/${uid}`, "qubes-air", "daemon.sock"), fallback] : [fallback];
}

export function currentUid(): number {
  return typeof process.getuid === "function" ? process.getuid() : -1;
}
