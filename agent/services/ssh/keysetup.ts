/**
 * `qubes-air-agent ssh-setup`: puts an SSH key on the device, locally, never over the link (as
 * gpg-setup does for OpenPGP; agent/services/gpg/keysetup.ts).
 *
 * - --generate: a new ed25519 key made on the device by ssh-keygen, no passphrase (there is
 *   nobody to type one; the physical confirmation guards each signature).
 * - --import FILE: a private key from a local file (e.g. a USB stick), which must open without a
 *   passphrase (`ssh-keygen -p -N "" -f FILE` removes one first).
 *
 * Keys live in <sshDir>/keys (0700, files 0600; sshDir = <stateDir>/ssh), where the device's
 * ssh-agent loads them from (device-agent.ts). The public keys (authorized_keys lines) are
 * printed, or written to --export FILE, for the servers the key is to log in to.
 * Must never: read or write anything over the link, or overwrite a key that is there.
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError } from "../../../core/errors.ts";
import { parseCommandLine } from "../../../platform/cli/parse.ts";
import { platform } from "../../../platform/index.ts";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../../config.ts";
import { keyFiles, sshEnv } from "./device-agent.ts";

export const DEFAULT_SSH_DIR = "/var/lib/qubes-air/ssh";

export interface SshSetupOptions {
  readonly sshDir: string;
  readonly generate: boolean;
  readonly importFile?: string;
  /** The key's file name in <sshDir>/keys (default id_ed25519, or the imported file's name). */
  readonly name?: string;
  readonly comment?: string;
  readonly exportFile: string | null;
  readonly sshKeygen?: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function parseSshSetupArgs(args: string[], defaultDir: string): SshSetupOptions | "help" {
  const values = parseCommandLine(
    args,
    {
      config: { type: "string" },
      generate: { type: "boolean" },
      import: { type: "string" },
      dir: { type: "string" },
      name: { type: "string" },
      comment: { type: "string" },
      export: { type: "string" },
    },
    { positionals: false },
  ).values as Record<string, string | boolean | undefined>;
  if (values.help === true) return "help";
  const generate = values.generate === true;
  const importFile = typeof values.import === "string" ? values.import : undefined;
  if (generate && importFile !== undefined) throw new ConfigError("give --generate or --import, not both");
  const name = typeof values.name === "string" ? values.name : undefined;
  if (name !== undefined && (!NAME_RE.test(name) || name.endsWith(".pub")))
    throw new ConfigError("--name must be a plain file name like id_ed25519 (letters, digits, _ . -)");
  const comment = typeof values.comment === "string" ? values.comment : undefined;
  if (comment !== undefined && !/^[\x20-\x7e]{1,100}$/.test(comment))
    throw new ConfigError("--comment must be 1 to 100 printable ASCII characters");
  return {
    sshDir: typeof values.dir === "string" ? values.dir : defaultDir,
    generate,
    ...(importFile !== undefined ? { importFile } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(comment !== undefined ? { comment } : {}),
    exportFile: typeof values.export === "string" ? values.export : null,
  };
}

/** Makes or imports the key (if asked); returns the public keys of every key on the device. */
export async function sshSetup(o: SshSetupOptions): Promise<string> {
  const keygen = o.sshKeygen ?? "ssh-keygen";
  const keysDir = join(o.sshDir, "keys");
  await platform.mkdirp(o.sshDir, 0o700);
  await platform.mkdirp(keysDir, 0o700);
  if (o.generate) {
    const target = join(keysDir, o.name ?? "id_ed25519");
    refuseExisting(target);
    const r = await run([
      keygen,
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      o.comment ?? "qubes-air device key",
      "-f",
      target,
    ]);
    if (r.code !== 0) throw new ConfigError(`ssh-keygen failed (exit ${r.code}): ${r.stderr.trim()}`, 1);
  } else if (o.importFile !== undefined) {
    const name = o.name ?? basename(o.importFile);
    if (!NAME_RE.test(name) || name.endsWith(".pub"))
      throw new ConfigError("give the key a plain file name with --name, e.g. --name id_ed25519");
    const target = join(keysDir, name);
    refuseExisting(target);
    const data = await platform.readFile(o.importFile).catch(() => {
      throw new ConfigError(`cannot read ${o.importFile}`);
    });
    // Checked in place (0600: ssh-keygen refuses a private key others can read, as a file on a
    // USB stick often is). -P "": a key with a passphrase fails here, not in the device's
    // ssh-agent later.
    await platform.writeFileAtomic(target, data, 0o600);
    const pub = await run([keygen, "-y", "-P", "", "-f", target]);
    if (pub.code !== 0) {
      await rm(target, { force: true });
      throw new ConfigError(
        `${o.importFile} is not a private key that opens without a passphrase ` +
          '(remove the passphrase on a safe machine first: ssh-keygen -p -N "" -f FILE)',
      );
    }
    await platform.writeFileAtomic(`${target}.pub`, pub.stdout, 0o644);
  }
  const lines: string[] = [];
  for (const f of await keyFiles(keysDir)) {
    const r = await run([keygen, "-y", "-P", "", "-f", f]);
    if (r.code === 0) lines.push(r.stdout.trim());
  }
  if (lines.length === 0) throw new ConfigError("no SSH key on this device: make one with --generate", 1);
  const text = `${lines.join("\n")}\n`;
  if (o.exportFile) await platform.writeFileAtomic(o.exportFile, text, 0o644);
  return text;
}

function refuseExisting(path: string): void {
  if (existsSync(path)) throw new ConfigError(`${path} exists: remove it first, or give another --name`);
}

async function run(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = await platform.spawn(argv, { env: sshEnv(), stdin: "ignore" }).catch(() => {
    throw new ConfigError(`cannot run ${argv[0]}: install OpenSSH's client tools (openssh-client)`, 1);
  });
  const read = async (src: typeof child.stdout) => {
    let out = "";
    if (!src) return out;
    for (let c = await src.read(); c !== null; c = await src.read()) out += new TextDecoder().decode(c);
    return out;
  };
  const [stdout, stderr] = await Promise.all([read(child.stdout), read(child.stderr)]);
  return { code: (await child.exited).code, stdout, stderr };
}

/** The ssh directory of the agent's config (<stateDir>/ssh), unless --dir is given. */
export async function configuredDir(args: string[]): Promise<string> {
  const peek = parseArgs({
    args,
    options: { config: { type: "string" }, dir: { type: "string" } },
    strict: false,
    allowPositionals: true,
  }).values;
  if (typeof peek.dir === "string") return peek.dir;
  if (typeof peek.config === "string") return sshDirOf((await loadConfig(peek.config)).stateDir);
  if (!existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_SSH_DIR;
  return sshDirOf((await loadConfig(DEFAULT_CONFIG_PATH)).stateDir);
}

/** Where a device keeps its SSH keys and its ssh-agent's socket. */
export function sshDirOf(stateDir: string): string {
  return join(stateDir, "ssh");
}
