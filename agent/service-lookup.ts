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
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { SERVICE_NAME_MAX } from "../core/qrexec/names.ts";
import { platform } from "../platform/index.ts";

export type Lookup =
  | { readonly kind: "found"; readonly path: string }
  | { readonly kind: "not-executable"; readonly path: string }
  | { readonly kind: "none" };

export async function findService(dirs: readonly string[], service: string, arg: string): Promise<Lookup> {
  const full = `${service}+${arg}`;
  const names = Buffer.byteLength(full) <= SERVICE_NAME_MAX ? [full, service] : [service];
  for (const name of names) {
    for (const dir of dirs) {
      const path = join(dir, name);
      const st = await platform.stat(path);
      if (!st) continue;
      if (!st.isFile) return { kind: "not-executable", path };
      const executable = await access(path, constants.X_OK).then(
        () => true,
        () => false,
      );
      return executable ? { kind: "found", path } : { kind: "not-executable", path };
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
