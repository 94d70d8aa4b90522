/**
 * split-gpg v1's option tables, transcribed from upstream gpg-common.h (v2.0.85; reference
 * §1): every long option it recognises with its arity, which of them are allowed (96 names) and
 * which are recognised only so their arguments are consumed correctly and then refused (17), the
 * short option string `bacdekKnN:o:qr:R:stu:`, and the commands with the kind of positional
 * arguments they take. QSB-071 was a wrong arity here; test/integration/gpg-differential.test.ts
 * checks every arity against the device's own `gpg --dump-options`.
 * Must never: grow an entry without the differential test passing.
 */

export interface OptionSpec {
  /** The long name as written on the command line (without "--"). */
  readonly name: string;
  /** What it means: aliases share an id (list-key, list-keys, list-public-keys, -k). */
  readonly id: string;
  readonly hasArg: boolean;
  readonly allowed: boolean;
}

/** [name, id (defaults to name), takes an argument, allowed]. */
const LONG: readonly (readonly [string, string | null, boolean, boolean])[] = [
  ["always-trust", null, false, true],
  ["armor", null, false, true],
  ["attribute-fd", null, true, true],
  ["batch", null, false, true],
  ["cert-digest-algo", null, true, false],
  ["cert-notation", null, true, true],
  ["charset", "display-charset", true, false],
  ["cipher-algo", null, true, false],
  ["clearsign", null, false, true],
  ["clear-sign", null, false, true],
  ["command-fd", null, true, false],
  ["comment", null, true, true],
  ["compress-algo", null, true, true],
  ["decrypt", null, false, true],
  ["default-key", null, true, true],
  ["default-recipient", null, true, false],
  ["default-recipient-self", null, false, true],
  ["detach-sign", null, false, true],
  ["digest-algo", null, true, true],
  ["disable-cipher-algo", null, true, false],
  ["disable-mdc", null, false, false],
  ["disable-pubkey-algo", null, true, false],
  ["display", null, true, false],
  ["display-charset", null, true, false],
  ["dry-run", null, false, true],
  ["emit-version", null, false, true],
  ["enable-progress-filter", null, false, true],
  ["encrypt", null, false, true],
  ["encrypt-to", null, true, true],
  ["exit-on-status-write-error", null, false, true],
  ["export", null, false, true],
  ["export-ssh-key", null, false, true],
  ["export-options", null, true, true],
  ["export-ownertrust", null, false, true],
  ["fingerprint", null, false, true],
  ["fixed-list-mode", null, false, true],
  ["force-mdc", null, false, false],
  ["force-v3-sigs", null, false, false],
  ["force-v4-certs", null, false, false],
  ["gnupg", null, false, true],
  ["hidden-encrypt-to", null, true, true],
  ["hidden-recipient", null, true, true],
  ["list-config", null, false, true],
  ["list-key", "list-keys", false, true],
  ["list-keys", null, false, true],
  ["list-only", null, false, true],
  ["list-options", null, true, true],
  ["list-public-keys", "list-keys", false, true],
  ["list-secret-keys", null, false, true],
  ["list-sig", "list-sigs", false, true],
  ["list-sigs", null, false, true],
  ["local-user", null, true, true],
  ["logger-fd", null, true, true],
  ["keyid-format", null, true, true],
  ["max-output", null, true, true],
  ["no-armor", null, false, true],
  ["no-auto-check-trustdb", null, false, true],
  ["no-comments", null, false, true],
  ["no-default-recipient", null, false, true],
  ["no-encrypt-to", null, false, true],
  ["no-emit-version", null, false, true],
  ["no-force-v3-sigs", null, false, true],
  ["no-force-v4-certs", null, false, true],
  ["no-greeting", null, false, true],
  ["no-secmem-warning", null, false, true],
  ["no-sk-comments", null, false, false],
  ["no-skip-hidden-recipients", null, false, true],
  ["no-throw-keyids", null, false, true],
  ["no-tty", null, false, false],
  ["no-verbose", null, false, true],
  ["openpgp", null, false, true],
  ["output", null, true, true],
  ["personal-cipher-preferences", null, true, true],
  ["personal-compress-preferences", null, true, true],
  ["personal-digest-preferences", null, true, true],
  ["pgp6", null, false, true],
  ["pgp7", null, false, true],
  ["pgp8", null, false, true],
  ["quiet", null, false, true],
  ["recipient", null, true, true],
  ["rfc2440", null, false, true],
  ["rfc4880", null, false, true],
  ["s2k-cipher-algo", null, true, true],
  ["s2k-count", null, true, true],
  ["s2k-digest-algo", null, true, true],
  ["s2k-mode", null, true, true],
  ["show-session-key", null, false, true],
  ["sender", null, true, true],
  ["sig-notation", null, true, true],
  ["sign", null, false, true],
  ["set-filename", null, true, true],
  ["set-notation", null, true, true],
  ["skip-hidden-recipients", null, false, true],
  ["status-fd", null, true, true],
  ["store", null, false, true],
  ["symmetric", null, false, true],
  ["textmode", null, false, true],
  ["throw-keyids", null, false, true],
  ["trust-model", null, true, true],
  ["trusted-key", null, true, true],
  ["try-secret-key", null, true, true],
  ["try-all-secrets", null, false, true],
  ["unwrap", null, false, true],
  ["use-agent", null, false, false],
  ["utf8-strings", null, false, false],
  ["verify", null, false, true],
  ["verify-options", null, true, true],
  ["verbose", null, false, true],
  ["version", null, false, true],
  ["with-colons", null, false, true],
  ["with-fingerprint", null, false, true],
  ["with-keygrip", null, false, true],
  ["with-secret", null, false, true],
];

export const LONG_OPTIONS: ReadonlyMap<string, OptionSpec> = new Map(
  LONG.map(([name, id, hasArg, allowed]) => [name, { name, id: id ?? name, hasArg, allowed }]),
);

/** The short option string without upstream's leading "+" (no permutation). */
export const SHORT_OPTION_STRING = "bacdekKnN:o:qr:R:stu:";

/** Short option letter -> the long option it means. */
const SHORT_TO_LONG: Record<string, string> = {
  a: "armor",
  b: "detach-sign",
  c: "symmetric",
  d: "decrypt",
  e: "encrypt",
  k: "list-keys",
  K: "list-secret-keys",
  n: "dry-run",
  N: "set-notation",
  o: "output",
  q: "quiet",
  r: "recipient",
  R: "hidden-recipient",
  s: "sign",
  t: "textmode",
  u: "local-user",
};

export const SHORT_OPTIONS: ReadonlyMap<string, OptionSpec> = new Map(
  Object.entries(SHORT_TO_LONG).map(([c, long]) => [c, LONG_OPTIONS.get(long)!]),
);

/**
 * Commands (by id) and whether their positional arguments are user IDs (else: at most a lone
 * "-" on the server). A command of one kind mixed with one of the other kind is refused.
 */
export const COMMANDS: ReadonlyMap<string, { readonly userIdArgs: boolean }> = new Map(
  (
    [
      ["list-secret-keys", true],
      ["detach-sign", false],
      ["symmetric", false],
      ["decrypt", false],
      ["encrypt", false],
      ["list-keys", true],
      ["sign", false],
      ["clearsign", false],
      ["clear-sign", false],
      ["export", true],
      ["export-ssh-key", true],
      ["export-ownertrust", false],
      ["fingerprint", true],
      ["list-config", false],
      ["list-sigs", true],
      ["store", false],
      ["verify", false],
    ] as const
  ).map(([id, userIdArgs]) => [id, { userIdArgs }]),
);
