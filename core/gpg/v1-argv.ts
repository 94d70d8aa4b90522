/**
 * From a checked v1 request to the gpg command line the device runs, and what the request does
 * with secret keys (for the confirmation). The argv is rebuilt from our own option names: the
 * fixed safe prefix, a pinned --homedir, every option as one `--name` or `--name=value` word
 * (so no value can be read as another option), fds renumbered to the child's own, and all
 * positionals after "--". The verify signature is read through gpg's special filename `-&N`.
 * Must never: copy a client's argument word into the argv as it was written.
 */
import type { V1Request } from "./v1-options.ts";

/** What upstream's gpg-server always prepends. */
export const SAFE_PREFIX = [
  "--no-tty",
  "--disable-dirmngr",
  "--photo-viewer=/bin/true",
  "--batch",
  "--exit-on-status-write-error",
] as const;

export interface GpgInvocation {
  readonly argv: readonly string[];
  /** The child fd that each entry of the client-to-server list feeds (index = frame fd). */
  readonly childInputFds: readonly number[];
  /** The child fd that each entry of the server-to-client list comes from. */
  readonly childOutputFds: readonly number[];
}

const FD_OPTIONS = new Set(["status-fd", "logger-fd", "attribute-fd"]);

export function buildGpgArgv(req: V1Request, gpg: string, homedir: string): GpgInvocation {
  // Child fds: 0, 1, 2 stay; every other client fd gets the next free number from 3 up.
  const childOutputFds: number[] = [];
  let nextFd = 3;
  const outMap = new Map<number, number>();
  for (const fd of req.outputFds) {
    const child = fd === 1 || fd === 2 ? fd : nextFd++;
    outMap.set(fd, child);
    childOutputFds.push(child);
  }
  const childInputFds: number[] = [];
  const inMap = new Map<number, number>();
  for (const fd of req.inputFds) {
    const child = fd === 0 ? 0 : nextFd++;
    inMap.set(fd, child);
    childInputFds.push(child);
  }

  const argv: string[] = [gpg, ...SAFE_PREFIX, `--homedir=${homedir}`];
  if (req.verifySigFd !== null) argv.push("--enable-special-filenames");
  for (const o of req.options) {
    if (FD_OPTIONS.has(o.id)) argv.push(`--${o.id}=${outMap.get(Number(o.value))!}`);
    else argv.push(o.value === undefined ? `--${o.id}` : `--${o.id}=${o.value}`);
  }
  argv.push("--");
  if (req.verifySigFd !== null) argv.push(`-&${inMap.get(req.verifySigFd)!}`);
  if (req.dashInput) argv.push("-");
  argv.push(...req.userIds);
  return { argv, childInputFds, childOutputFds };
}

export type SecretUse = "sign" | "sign+encrypt" | "decrypt";

const SIGN = ["sign", "detach-sign", "clearsign", "clear-sign"];
/** Commands that never touch a secret key. */
const PUBLIC_ONLY = new Set([
  "encrypt",
  "symmetric",
  "verify",
  "list-keys",
  "list-secret-keys",
  "export",
  "export-ssh-key",
  "export-ownertrust",
  "fingerprint",
  "list-config",
  "list-sigs",
  "store",
]);

/**
 * Whether the request uses a secret key, and how. No command at all makes gpg guess from the
 * data (it decrypts an encrypted message), so it counts as decrypt unless it is --version.
 */
export function secretUse(req: V1Request): SecretUse | null {
  const c = req.commands;
  if (c.some((x) => SIGN.includes(x))) return c.includes("encrypt") ? "sign+encrypt" : "sign";
  if (c.includes("decrypt")) return "decrypt";
  if (c.length > 0 && c.every((x) => PUBLIC_ONLY.has(x))) return null;
  if (c.length === 0 && req.options.some((o) => o.id === "version")) return null;
  return "decrypt";
}

/** The key names a signing request gives (-u/--local-user, else --default-key), as given. */
export function signerSpecs(req: V1Request): string[] {
  const u = req.options.filter((o) => o.id === "local-user").map((o) => o.value!);
  if (u.length > 0) return u;
  return req.options.filter((o) => o.id === "default-key").map((o) => o.value!);
}
