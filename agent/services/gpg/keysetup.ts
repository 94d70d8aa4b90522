/**
 * `qubes-air-agent gpg-setup`: puts an OpenPGP key on the device, locally, never over the link.
 *
 * - --generate UID: a new key made on the device: an ed25519 certify-only primary key plus an
 *   ed25519 signing subkey and a cv25519 encryption subkey, no passphrase (there is nobody to
 *   type one; the physical confirmation guards each use).
 * - --import FILE: a secret key from a local file (e.g. a USB stick), with its subkeys.
 *
 * The full key lives in the primary home (default <home>-primary) and is never served. The
 * served home (--home, the split-GPG services' gnupgHome) gets the public keys and the secret
 * *subkeys* only (`--export-secret-subkeys | --import`), so no client can certify with the
 * primary key. The public key is exported armored (to --export FILE or stdout) for the host.
 * - --pin: seals the secret keys under a PIN the person types here (twice; or one line on stdin
 *   when stdin is not a terminal): agent/keylock/sealed.ts, docs/key-lock.md. The served home's
 *   subkeys go to <home>.sealed and the full key to <home>.primary.sealed; the plaintext key files
 *   of both homes are overwritten and removed, and the attempt counter starts at zero. The agent
 *   then serves the key only after `qubes-air unlock`.
 * Must never: read or write anything over the link, put the primary secret in the served home,
 * or leave a plaintext key file behind once --pin sealed it.
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError, ProtocolError } from "../../../core/errors.ts";
import { parsePin } from "../../../core/keylock/pin.ts";
import { readSecretLine, SecretInputAborted } from "../../../platform/cli/secret-line.ts";
import { platform } from "../../../platform/index.ts";
import { type Command, parse, print } from "../../cli/cli.ts";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../../config.ts";
import { AttemptCounter } from "../../keylock/attempts.ts";
import { destroyFile, lockFilesOf, readPrivateKeys } from "../../keylock/files.ts";
import { SCRYPT_DEFAULTS, type ScryptParams, seal } from "../../keylock/sealed.ts";
import { type Captured, capture } from "./gpg-tools.ts";

export const DEFAULT_GNUPG_HOME = "/var/lib/qubes-air/gnupg";

export interface GpgSetupOptions {
  /** The served home (subkeys only). */
  readonly gnupgHome: string;
  /** Where the full key lives (default `${gnupgHome}-primary`). */
  readonly primaryHome: string;
  readonly generate?: string;
  readonly importFile?: string;
  /** Where to write the armored public key; null = return it only. */
  readonly exportFile: string | null;
  readonly gpg?: string;
  /** Seal the keys under this PIN (docs/key-lock.md). */
  readonly pin?: string;
  /** Ask for the PIN (parse only; run() reads it and sets `pin`). */
  readonly askPin?: boolean;
  /** scrypt cost (tests lower it; the default is SCRYPT_DEFAULTS). */
  readonly scrypt?: ScryptParams;
}

export interface GpgSetupResult {
  /** Primary fingerprints now served (subkeys). */
  readonly fingerprints: readonly string[];
  readonly publicKey: string;
}

export function parseGpgSetupArgs(
  args: string[],
  defaultHome: string = DEFAULT_GNUPG_HOME,
): GpgSetupOptions | "help" {
  const { values, help } = parse("gpg-setup", args, {
    config: { type: "string" },
    generate: { type: "string" },
    import: { type: "string" },
    home: { type: "string" },
    "primary-home": { type: "string" },
    export: { type: "string" },
    pin: { type: "boolean" },
  });
  if (help) return "help";
  const generate = typeof values.generate === "string" ? values.generate : undefined;
  const importFile = typeof values.import === "string" ? values.import : undefined;
  if (generate !== undefined && importFile !== undefined) {
    throw new ConfigError("give --generate or --import, not both");
  }
  if (generate !== undefined && !/^[^\n\r\0:]{1,200}$/.test(generate)) {
    throw new ConfigError('--generate needs a user ID like "Name <mail@example.org>"');
  }
  const gnupgHome = typeof values.home === "string" ? values.home : defaultHome;
  const primaryHome =
    typeof values["primary-home"] === "string" ? values["primary-home"] : `${gnupgHome}-primary`;
  if (primaryHome === gnupgHome) throw new ConfigError("the primary home must differ from --home");
  return {
    gnupgHome,
    primaryHome,
    generate,
    importFile,
    exportFile: typeof values.export === "string" ? values.export : null,
    ...(values.pin === true ? { askPin: true } : {}),
  };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

function check(r: Captured, what: string): Captured {
  if (r.status !== 0) {
    const tail = text(r.stderr).trim().split("\n").slice(-3).join("\n");
    throw new ConfigError(`${what} failed (exit ${r.status})${tail ? `:\n${tail}` : ""}`, 1);
  }
  return r;
}

/**
 * Fingerprints from status lines `[GNUPG:] <tag> <...> <fpr>`: 40 hex digits for a v4 key, 64
 * for a v5 key (GnuPG 2.3+, e.g. ed448/cv448).
 */
export function statusFingerprints(out: Uint8Array, tag: string): string[] {
  const fprs: string[] = [];
  for (const l of text(out).split("\n")) {
    const m = new RegExp(`^\\[GNUPG:\\] ${tag} (?:\\S+ )?([0-9A-F]{64}|[0-9A-F]{40})(?: |$)`).exec(l);
    if (m && !fprs.includes(m[1]!)) fprs.push(m[1]!);
  }
  return fprs;
}

export async function gpgSetup(o: GpgSetupOptions): Promise<GpgSetupResult> {
  const gpg = o.gpg ?? "gpg";
  const base = (home: string) => [gpg, "--homedir", home, "--batch", "--no-tty"];
  const withStatus = (home: string) => [...base(home), "--status-fd", "1"];
  await platform.mkdirp(o.primaryHome, 0o700);
  await platform.mkdirp(o.gnupgHome, 0o700);
  let fingerprints: string[];
  if (o.generate !== undefined) {
    const made = check(
      await capture([
        ...withStatus(o.primaryHome),
        "--passphrase",
        "",
        "--quick-gen-key",
        o.generate,
        "ed25519",
        "cert",
        "never",
      ]),
      "creating the primary key",
    );
    fingerprints = statusFingerprints(made.stdout, "KEY_CREATED");
    const fpr = fingerprints[0];
    if (!fpr) throw new ConfigError("gpg did not report the new key", 1);
    for (const [algo, usage] of [
      ["ed25519", "sign"],
      ["cv25519", "encr"],
    ]) {
      check(
        await capture([
          ...base(o.primaryHome),
          "--passphrase",
          "",
          "--quick-add-key",
          fpr,
          algo!,
          usage!,
          "never",
        ]),
        `adding the ${usage} subkey`,
      );
    }
  } else if (o.importFile !== undefined) {
    const data = await platform.readFile(o.importFile).catch(() => {
      throw new ConfigError(`cannot read ${o.importFile}`);
    });
    const r = check(
      await capture([...withStatus(o.primaryHome), "--import"], { input: data }),
      "importing the key",
    );
    fingerprints = statusFingerprints(r.stdout, "IMPORT_OK");
    // IMPORT_RES <count> <no_user_id> <imported> ... <sec_read> (the 11th number)
    const res = /^\[GNUPG:\] IMPORT_RES ((?:\d+ ?)+)$/m.exec(text(r.stdout));
    const secRead = Number(res?.[1]?.split(" ")[10] ?? 0);
    if (fingerprints.length === 0 || !(secRead > 0)) {
      throw new ConfigError("the file holds no secret key (export it with --export-secret-keys)", 1);
    }
  } else {
    fingerprints = [];
  }
  if (fingerprints.length > 0) {
    const subkeys = check(
      await capture([...base(o.primaryHome), "--export-secret-subkeys", "--", ...fingerprints]),
      "exporting the secret subkeys",
    );
    check(
      await capture([...base(o.gnupgHome), "--import"], { input: subkeys.stdout }),
      "importing the subkeys",
    );
    const trust = fingerprints.map((f) => `${f}:6:\n`).join("");
    check(
      await capture([...base(o.gnupgHome), "--import-ownertrust"], {
        input: new TextEncoder().encode(trust),
      }),
      "setting the owner trust",
    );
  }
  const pub = check(
    await capture([...base(o.gnupgHome), "--armor", "--export", "--", ...fingerprints]),
    "exporting",
  );
  const publicKey = text(pub.stdout);
  if (!publicKey.includes("BEGIN PGP PUBLIC KEY BLOCK")) throw new ConfigError("no key to export", 1);
  if (o.exportFile) await platform.writeFileAtomic(o.exportFile, publicKey, 0o644);
  if (o.pin !== undefined) await sealHomes(o, o.pin);
  return { fingerprints, publicKey };
}

/**
 * Seals the secret key files of both homes under the PIN, then destroys the plaintext ones and
 * stops both homes' gpg-agents (which may hold them). The sealed files are on disk (fsynced)
 * before any plaintext is removed.
 */
async function sealHomes(o: GpgSetupOptions, pin: string): Promise<void> {
  const files = lockFilesOf(o.gnupgHome);
  const served = await readPrivateKeys(o.gnupgHome);
  const primary = await readPrivateKeys(o.primaryHome);
  if (served.size === 0) {
    throw new ConfigError(
      existsSync(files.sealed)
        ? "the key is already sealed under a PIN; to change it, set the key up again (--generate or --import)"
        : "no secret key to seal: give --generate or --import",
      1,
    );
  }
  const params = o.scrypt ?? SCRYPT_DEFAULTS;
  await platform.writeFileAtomic(files.sealed, await seal(served, pin, params), 0o600);
  if (primary.size > 0)
    await platform.writeFileAtomic(files.primarySealed, await seal(primary, pin, params), 0o600);
  await (await AttemptCounter.open(files.attempts)).reset();
  for (const home of [o.gnupgHome, o.primaryHome]) {
    await capture(["gpgconf", "--homedir", home, "--kill", "gpg-agent"]).catch(() => null);
    for (const name of (await readPrivateKeys(home)).keys())
      await destroyFile(`${home}/private-keys-v1.d/${name}`);
  }
  for (const k of [...served.values(), ...primary.values()]) k.fill(0);
}

/** Asks for the PIN: twice on a terminal, once from stdin otherwise. */
async function askPin(): Promise<string> {
  const read = (prompt: string) =>
    readSecretLine(prompt).catch((e) => {
      if (e instanceof SecretInputAborted) throw new ConfigError("no PIN given; nothing was changed", 1);
      throw e;
    });
  const first = checkedPin(await read("New PIN for the key (4-128 characters): "));
  if (process.stdin.isTTY) {
    const again = await read("The same PIN again: ");
    if (again !== first) throw new ConfigError("the two PINs differ; nothing was changed");
  }
  return first;
}

function checkedPin(s: string): string {
  try {
    return parsePin(new TextEncoder().encode(s));
  } catch (e) {
    if (e instanceof ProtocolError)
      throw new ConfigError("the PIN must be 4 to 128 characters, no control characters");
    throw e;
  }
}

export const gpgSetupCommand: Command = {
  name: "gpg-setup",
  summary: "create or import the OpenPGP key split-GPG serves",
  help: `Usage: qubes-air-agent gpg-setup (--generate UID | --import FILE) [--config PATH | --home DIR]
                                   [--primary-home DIR] [--export FILE] [--pin]
       qubes-air-agent gpg-setup --export FILE [--config PATH | --home DIR]

Creates an OpenPGP key on the device (an ed25519 certify-only primary key with ed25519
signing and cv25519 encryption subkeys), or imports a secret key from a local file. The
split-GPG services serve only the secret subkeys, from --home; the full key stays in the
primary home. Prints (or writes to --export) the armored public key to import in Qubes.
Nothing is sent over the link.

Options:
  --generate UID       create a new key, e.g. "Jane Doe <jane@example.org>"
  --import FILE        import a secret key (gpg --export-secret-keys --armor output)
  --config PATH        the agent's configuration: its "gnupgHome" is the default --home
                       (default ${DEFAULT_CONFIG_PATH}, when it exists)
  --home DIR           the served GnuPG home (default: the config's gnupgHome, which is
                       <stateDir>/gnupg, or ${DEFAULT_GNUPG_HOME} without a config)
  --primary-home DIR   where the full key is kept (default <home>-primary)
  --export FILE        write the public key here instead of printing it
  --pin                seal the secret keys under a PIN, asked here (twice on a terminal;
                       the first line of stdin otherwise); the agent then serves the key only
                       after \`qubes-air unlock NAME\` in sys-remote (docs/key-lock.md)

Examples:
  qubes-air-agent gpg-setup --generate "Jane Doe <jane@example.org>" --export /media/usb/jane.asc
  qubes-air-agent gpg-setup --import /media/usb/secret.asc
  qubes-air-agent gpg-setup --generate "Jane Doe <jane@example.org>" --pin
  qubes-air-agent gpg-setup --config ./agent.json --export ./device.asc`,
  async run(args) {
    const o = parseGpgSetupArgs(args, await configuredHome(args));
    if (o === "help") {
      print(this.help);
      return 0;
    }
    const r = await gpgSetup(o.askPin ? { ...o, pin: await askPin() } : o);
    if (o.exportFile) process.stderr.write(`qubes-air-agent: public key written to ${o.exportFile}\n`);
    else print(r.publicKey);
    return 0;
  },
};

/** The served home the agent's config names, unless --home is given (then it does not matter). */
async function configuredHome(args: string[]): Promise<string> {
  const peek = parseArgs({
    args,
    options: { config: { type: "string" }, home: { type: "string" } },
    strict: false,
    allowPositionals: true,
  }).values;
  if (typeof peek.home === "string") return peek.home;
  if (typeof peek.config === "string") return (await loadConfig(peek.config)).gnupgHome;
  if (!existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_GNUPG_HOME;
  return (await loadConfig(DEFAULT_CONFIG_PATH)).gnupgHome;
}
