import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../../core/errors.ts";
import { unseal, WrongPinError } from "../../keylock/sealed.ts";
import { capture } from "./gpg-tools.ts";
import { DEFAULT_GNUPG_HOME, gpgSetup, parseGpgSetupArgs, statusFingerprints } from "./keysetup.ts";

const dirs: string[] = [];
function dir(): string {
  const d = mkdtempSync("/tmp/qa-ks-");
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) {
    for (const h of ["s", "p", "src"]) await capture(["gpgconf", "--homedir", join(d, h), "--kill", "all"]);
    rmSync(d, { recursive: true, force: true });
  }
});

async function secretListing(home: string): Promise<string> {
  const r = await capture(["gpg", "--homedir", home, "--batch", "--with-colons", "-K"]);
  return new TextDecoder().decode(r.stdout);
}

describe("gpg-setup status parsing", () => {
  test("v4 (40 hex) and v5 (64 hex, GnuPG 2.3+ ed448/cv448) fingerprints", () => {
    const v4 = "16513FB3BF2BFF1C83BA4AB60238DB12129981E5";
    const v5 = "A880BCF8FA394A652448B430D66736A077101968C530B86E6F732C084607D841";
    const status = new TextEncoder().encode(
      [
        `[GNUPG:] IMPORT_OK 1 ${v4}`,
        `[GNUPG:] IMPORT_OK 17 ${v5}`,
        `[GNUPG:] KEY_CREATED P ${v5} handle`,
        `[GNUPG:] IMPORT_OK 1 ${v5.slice(0, 50)}`,
        `[GNUPG:] IMPORT_OK 1 ${v4}00`,
      ].join("\n"),
    );
    expect(statusFingerprints(status, "IMPORT_OK")).toEqual([v4, v5]);
    expect(statusFingerprints(status, "KEY_CREATED")).toEqual([v5]);
  });
});

describe("gpg-setup arguments", () => {
  test("defaults and checks", () => {
    expect(parseGpgSetupArgs(["--generate", "A <a@b>"])).toEqual({
      gnupgHome: DEFAULT_GNUPG_HOME,
      primaryHome: `${DEFAULT_GNUPG_HOME}-primary`,
      generate: "A <a@b>",
      importFile: undefined,
      exportFile: null,
    });
    expect(parseGpgSetupArgs(["--help"])).toBe("help");
    expect(() => parseGpgSetupArgs(["--generate", "a", "--import", "f"])).toThrow(ConfigError);
    expect(() => parseGpgSetupArgs(["--generate", "a:b"])).toThrow(ConfigError);
    expect(() => parseGpgSetupArgs(["--home", "/x", "--primary-home", "/x"])).toThrow(ConfigError);
    expect(() => parseGpgSetupArgs(["--bogus"])).toThrow(ConfigError);
  });
});

describe("gpg-setup", () => {
  test("generate: the served home has the secret subkeys only", async () => {
    const d = dir();
    const out = join(d, "pub.asc");
    const r = await gpgSetup({
      gnupgHome: join(d, "s"),
      primaryHome: join(d, "p"),
      generate: "Gen <gen@example.invalid>",
      exportFile: out,
    });
    expect(r.fingerprints).toHaveLength(1);
    expect(readFileSync(out, "utf-8")).toBe(r.publicKey);
    const served = await secretListing(join(d, "s"));
    expect(served).toMatch(/^sec:[^\n]*:cESC?:::#:/m); // primary: a stub only
    expect(served.match(/^ssb:[^\n]*:::\+:/gm)).toHaveLength(2); // both subkeys here
    const primary = await secretListing(join(d, "p"));
    expect(primary).toMatch(/^sec:[^\n]*:::\+:/m);
  });

  test("import a secret key from a local file; a public key alone is refused", async () => {
    const d = dir();
    const src = join(d, "src");
    await gpgSetup({
      gnupgHome: src,
      primaryHome: join(d, "src-p"),
      generate: "Imp <i@example.invalid>",
      exportFile: null,
    });
    const sec = await capture([
      "gpg",
      "--homedir",
      join(d, "src-p"),
      "--batch",
      "--armor",
      "--export-secret-keys",
    ]);
    writeFileSync(join(d, "secret.asc"), sec.stdout);
    const r = await gpgSetup({
      gnupgHome: join(d, "s"),
      primaryHome: join(d, "p"),
      importFile: join(d, "secret.asc"),
      exportFile: null,
    });
    expect(r.fingerprints).toHaveLength(1);
    expect(await secretListing(join(d, "s"))).toMatch(/^sec:[^\n]*:::#:/m);
    const pub = await capture(["gpg", "--homedir", src, "--batch", "--armor", "--export"]);
    writeFileSync(join(d, "public.asc"), pub.stdout);
    await expect(
      gpgSetup({
        gnupgHome: join(d, "s2"),
        primaryHome: join(d, "p2"),
        importFile: join(d, "public.asc"),
        exportFile: null,
      }),
    ).rejects.toThrow(ConfigError);
    for (const h of ["src-p", "s2", "p2"])
      await capture(["gpgconf", "--homedir", join(d, h), "--kill", "all"]);
  });

  test("--pin: both homes sealed, no plaintext secret key left; the PIN opens the served subkeys", async () => {
    const d = dir();
    await gpgSetup({
      gnupgHome: join(d, "s"),
      primaryHome: join(d, "p"),
      generate: "Pin <pin@example.invalid>",
      exportFile: null,
      pin: "correct horse",
      scrypt: { N: 2 ** 10, r: 8, p: 1 },
    });
    for (const h of ["s", "p"]) expect(readdirSync(join(d, h, "private-keys-v1.d"))).toEqual([]);
    expect(await secretListing(join(d, "s"))).not.toMatch(/^s(ec|sb):/m);
    expect(readFileSync(join(d, "s.pin-attempts"), "utf8")).toBe("failures=0 wiped=0\n");
    const opened = await unseal(readFileSync(join(d, "s.sealed")), "correct horse");
    expect(opened.size).toBe(2); // the two subkeys (the primary is a stub here)
    expect((await unseal(readFileSync(join(d, "s.primary.sealed")), "correct horse")).size).toBe(3);
    await expect(unseal(readFileSync(join(d, "s.sealed")), "wrong horse")).rejects.toBeInstanceOf(
      WrongPinError,
    );
    // Sealing again without a new key: nothing to seal, said as such.
    await expect(
      gpgSetup({ gnupgHome: join(d, "s"), primaryHome: join(d, "p"), exportFile: null, pin: "x1234" }),
    ).rejects.toThrow(/already sealed/);
  });

  test("--pin is parsed as a request to ask", () => {
    expect(parseGpgSetupArgs(["--generate", "A <a@b>", "--pin"])).toMatchObject({ askPin: true });
  });
});
