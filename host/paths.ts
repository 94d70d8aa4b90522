/**
 * Where the host keeps its files in sys-remote, one rule for the daemon, the CLI and the relay
 * (they must agree without talking to each other):
 *
 *   state dir   --state DIR | QUBES_AIR_STATE | $XDG_DATA_HOME/qubes-air | ~/.local/share/qubes-air
 *     registry.json   the remote qubes (host/registry.ts), mode 0600
 *     enrolments.json pending enrolments and spent tokens (host/daemon/enrolments.ts), mode 0600
 *     host.key        the host's static key (docs/key-files.md), mode 0600
 *     ik-timestamp    the last IK timestamp sent (host/timestamps.ts)
 *   socket      --socket PATH | QUBES_AIR_SOCKET | $XDG_RUNTIME_DIR/qubes-air/daemon.sock
 *               | /run/user/<uid>/qubes-air/daemon.sock (when that runtime dir exists) | <state>/daemon.sock
 *
 * The /run/user/<uid> step matters for the relay: qrexec may start it without XDG_RUNTIME_DIR,
 * while the daemon's systemd user unit has it; both then pick the same path.
 * Must never: do I/O beyond the one existence check of the runtime dir.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { currentUid, type Env, socketCandidatesOf, stateDirOf } from "./socket-path.ts";

export { type Env, socketCandidatesOf, stateDirOf };

export interface HostPaths {
  readonly stateDir: string;
  readonly registry: string;
  readonly enrolments: string;
  readonly hostKey: string;
  readonly timestamp: string;
  readonly socket: string;
}

export function socketPathOf(env: Env, stateDir: string, flag?: string, uid = currentUid()): string {
  const candidates = socketCandidatesOf(env, stateDir, flag, uid);
  // Two candidates: /run/user/UID/... if that runtime directory exists, else the state dir.
  if (candidates.length === 2 && !existsSync(`/run/user/${uid}`)) return candidates[1]!;
  return candidates[0]!;
}

export function hostPaths(env: Env, flags: { state?: string; socket?: string } = {}): HostPaths {
  const stateDir = stateDirOf(env, flags.state);
  return {
    stateDir,
    registry: join(stateDir, "registry.json"),
    enrolments: join(stateDir, "enrolments.json"),
    hostKey: join(stateDir, "host.key"),
    timestamp: join(stateDir, "ik-timestamp"),
    socket: socketPathOf(env, stateDir, flags.socket),
  };
}
