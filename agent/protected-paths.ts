/**
 * The agent's secrets by path, and the start-up check that the export directory of
 * `qubesair.CopyFrom` stays clear of them: part of the agent's configuration contract
 * (agent/config.ts checks exportDir with it; images/ may import that contract, so this file
 * imports nothing of the agent's runtime). agent/services/export-dir.ts enforces the same set at
 * copy time, by identity as well as by path.
 * Must never: leave a secret the agent keeps off the list.
 */
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";

/** The configuration the export directory and the protected set come from (agent/config.ts). */
export interface ExportConfig {
  /** The configuration file (only an absolute one is protected). */
  readonly path: string;
  readonly exportDir: string;
  readonly stateDir: string;
  readonly gnupgHome: string;
  readonly auditLog: string;
  readonly policyDir: string;
}

export interface ProtectedPath {
  readonly path: string;
  /** Our words for it, e.g. "the device key". */
  readonly what: string;
}

/**
 * What the device never sends, whatever exportDir and the policy say. The files in stateDir are
 * named as well as the directory, so a hard link to one is caught without the scan.
 */
export function protectedPaths(c: ExportConfig, env: NodeJS.ProcessEnv = process.env): ProtectedPath[] {
  const home = env.HOME || homedir();
  const list: ProtectedPath[] = [
    { path: c.stateDir, what: "the agent's state directory" },
    { path: join(c.stateDir, "device.key"), what: "the device key" },
    { path: join(c.stateDir, "pairing-token"), what: "the pairing token" },
    { path: join(c.stateDir, "hosts.json"), what: "the pinned host keys" },
    { path: c.auditLog, what: "the audit log" },
    { path: c.gnupgHome, what: "the GnuPG home" },
    { path: join(c.stateDir, "gnupg-primary"), what: "the GnuPG home" },
    { path: join(home, ".gnupg"), what: "a GnuPG home" },
    { path: c.policyDir, what: "the policy directory" },
  ];
  if (env.GNUPGHOME && isAbsolute(env.GNUPGHOME)) list.push({ path: env.GNUPGHOME, what: "a GnuPG home" });
  if (isAbsolute(c.path)) list.push({ path: c.path, what: "the agent's configuration" });
  return list;
}

/** True when `child` is `parent` or lies below it (both absolute and normalised). */
export function within(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent === "/" ? "/" : `${parent}/`);
}

/**
 * The start-up check on the configured paths as written (no file system access): null, or what
 * is wrong with exportDir. Links are checked again at copy time (ExportTree.open).
 */
export function exportDirProblem(c: ExportConfig, env: NodeJS.ProcessEnv = process.env): string | null {
  const e = resolve(c.exportDir);
  for (const p of protectedPaths(c, env)) {
    const q = resolve(p.path);
    if (within(e, q)) return `is ${p.what} (${q}) or lies inside it`;
    if (within(q, e)) return `contains ${p.what} (${q})`;
  }
  return null;
}
