/**
 * Finding and starting a service as qrexec does (qubes-remote-qrexec.md §2; upstream
 * libqrexec/exec.c): first `SERVICE+ARG` in every service directory (skipped when longer than
 * NAME_MAX), then `SERVICE` in every directory; the first path that exists wins, so a more
 * specific file that is not executable fails the call instead of falling back to the generic one
 * (upstream fails fast there too: a user may have disabled it on purpose).
 *
 * Environment: the agent's own minus every QREXEC* variable, then QREXEC_REMOTE_DOMAIN,
 * QREXEC_SERVICE_FULL_NAME, QREXEC_SERVICE_ARGUMENT, QREXEC_REQUESTED_TARGET_TYPE (empty, as in a
 * VM) and QREXEC_AGENT_PID. argv[1] is the argument when it is not empty.
 * Must never: go through a shell, or build a path from anything but validated names.
 */
import { accessSync, constants, statSync } from "node:fs";
import { join } from "node:path";
import { SERVICE_NAME_MAX } from "../../core/qrexec/names.ts";

export type Lookup =
  | { readonly kind: "found"; readonly path: string }
  | { readonly kind: "not-executable"; readonly path: string }
  | { readonly kind: "none" };

/** Synchronous on purpose: a few stat calls on local paths, on every call's critical path. */
export function findService(dirs: readonly string[], service: string, arg: string): Lookup {
  const full = `${service}+${arg}`;
  const names = Buffer.byteLength(full) <= SERVICE_NAME_MAX ? [full, service] : [service];
  for (const name of names) {
    for (const dir of dirs) {
      const path = join(dir, name);
      let isFile: boolean;
      try {
        isFile = statSync(path).isFile(); // follows symlinks, as qrexec's lookup does
      } catch {
        continue;
      }
      if (!isFile) return { kind: "not-executable", path };
      try {
        accessSync(path, constants.X_OK);
        return { kind: "found", path };
      } catch {
        return { kind: "not-executable", path };
      }
    }
  }
  return { kind: "none" };
}

export interface ServiceCallInfo {
  readonly source: string;
  readonly service: string;
  readonly arg: string;
}

export function serviceEnv(
  call: ServiceCallInfo,
  base: NodeJS.ProcessEnv = process.env,
  agentPid: number = process.pid,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith("QREXEC")) env[k] = v;
  env.QREXEC_REMOTE_DOMAIN = call.source;
  env.QREXEC_SERVICE_FULL_NAME = `${call.service}+${call.arg}`;
  env.QREXEC_SERVICE_ARGUMENT = call.arg;
  env.QREXEC_REQUESTED_TARGET_TYPE = "";
  env.QREXEC_AGENT_PID = String(agentPid);
  return env;
}

export function serviceArgv(path: string, arg: string): string[] {
  return arg === "" ? [path] : [path, arg];
}
