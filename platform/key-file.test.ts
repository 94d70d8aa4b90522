import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, chown, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { formatKeyFile, formatPublicKey, generateStaticKeyPair } from "../core/session/key-text.ts";
import { generateKeyFile, loadKeyPair, loadPublicKey, writeKeyFile, writePublicKeyFile } from "./key-file.ts";

let dir = "";
let n = 0;
const fresh = () => join(dir, `key-${n++}`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "qa-key-file-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configError(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => null,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(ConfigError);
  return (e as ConfigError).message;
}

async function put(text: string | Uint8Array, mode = 0o600): Promise<string> {
  const path = fresh();
  await writeFile(path, text);
  await chmod(path, mode);
  return path;
}

/** Names in the directory that are not final key files: leftovers of an atomic write. */
async function temporaries(): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.includes(".tmp-"));
}

describe("generateKeyFile / loadKeyPair", () => {
  test("round trip: mode 0600, documented text, same pair back, no temporary left", async () => {
    const path = fresh();
    const pair = await generateKeyFile(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, "utf-8")).toBe(formatKeyFile(pair));
    const loaded = await loadKeyPair(path);
    expect(loaded.privateKey).toEqual(pair.privateKey);
    expect(loaded.publicKey).toEqual(pair.publicKey);
    expect(await temporaries()).toEqual([]);
  });

  test("mode is exactly 0600 whatever the umask", async () => {
    const old = process.umask(0o000);
    try {
      const path = fresh();
      await generateKeyFile(path);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  test("refuses to overwrite an existing key, which stays intact", async () => {
    const path = fresh();
    const first = await generateKeyFile(path);
    const before = await readFile(path, "utf-8");
    expect(await configError(generateKeyFile(path))).toContain("already exists; refusing to overwrite");
    expect(await readFile(path, "utf-8")).toBe(before);
    expect((await loadKeyPair(path)).publicKey).toEqual(first.publicKey);
    expect(await temporaries()).toEqual([]);
  });

  test("refuses to write through any existing name, even a dangling symlink", async () => {
    const path = fresh();
    await symlink(join(dir, "nowhere"), path);
    expect(await configError(generateKeyFile(path))).toContain("already exists");
    expect(await readdir(dir)).not.toContain("nowhere");
    await rm(path);
  });

  test("overwrite: true replaces it atomically", async () => {
    const path = fresh();
    await generateKeyFile(path);
    const second = await generateKeyFile(path, { overwrite: true });
    expect((await loadKeyPair(path)).publicKey).toEqual(second.publicKey);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await temporaries()).toEqual([]);
  });

  test("writeKeyFile stores a given pair", async () => {
    const path = fresh();
    const pair = generateStaticKeyPair();
    await writeKeyFile(path, pair);
    expect((await loadKeyPair(path)).privateKey).toEqual(pair.privateKey);
  });

  test("a missing directory is a clear error, with nothing left behind", async () => {
    const path = join(dir, "no-such-dir", "key");
    expect(await configError(generateKeyFile(path))).toContain("mkdir -p -m 700");
  });
});

describe("loadKeyPair refuses", () => {
  test("a missing file, naming the path and the command that creates it", async () => {
    const path = join(dir, "absent key");
    const message = await configError(loadKeyPair(path));
    expect(message).toContain(`key file ${path} does not exist`);
    expect(message).toContain(`qubes-air-agent keygen --out '${path}'`);
    expect(await configError(loadKeyPair(path, { keygenCommand: "qubes-air keygen --out" }))).toContain(
      "qubes-air keygen --out",
    );
  });

  test.each(["644", "640", "604", "660", "601", "610", "666"])(
    "mode 0%s, with the chmod to run",
    async (octal) => {
      const mode = Number.parseInt(octal, 8);
      const path = await put(formatKeyFile(generateStaticKeyPair()), mode);
      const message = await configError(loadKeyPair(path));
      expect(message).toContain(`has mode 0${octal}`);
      expect(message).toContain(`chmod 600 ${path}`);
    },
  );

  test("modes 0600 and 0400 are accepted", async () => {
    for (const mode of [0o600, 0o400])
      await loadKeyPair(await put(formatKeyFile(generateStaticKeyPair()), mode));
  });

  test("a file over 4 KiB, before parsing it", async () => {
    const big = `${formatKeyFile(generateStaticKeyPair())}#${"x".repeat(5000)}\n`;
    expect(await configError(loadKeyPair(await put(big)))).toContain(
      "bytes; a key file is at most 4096 bytes",
    );
  });

  test("a key of the wrong size", async () => {
    const pair = generateStaticKeyPair();
    const text = formatKeyFile(pair).replace(
      /qa-priv:([0-9a-f]{64})/,
      (_, h: string) => `qa-priv:${h.slice(0, 62)}`,
    );
    expect(await configError(loadKeyPair(await put(text)))).toContain("64 hex digits (32 bytes), not 62");
  });

  test("a public line that does not match the private key", async () => {
    const a = generateStaticKeyPair();
    const b = generateStaticKeyPair();
    const text = formatKeyFile(a).replace(formatPublicKey(a.publicKey), formatPublicKey(b.publicKey));
    expect(await configError(loadKeyPair(await put(text)))).toContain("does not belong to the private key");
  });

  test("binary content", async () => {
    expect(await configError(loadKeyPair(await put(Uint8Array.of(0xff, 0xfe, 0x80))))).toContain("not UTF-8");
  });

  test("a directory", async () => {
    expect(await configError(loadKeyPair(dir))).toContain("not a regular file");
  });

  test("a file owned by another user", async () => {
    if (process.getuid?.() !== 0) return; // only root can give a file away
    const path = await put(formatKeyFile(generateStaticKeyPair()));
    await chown(path, 65534, 65534);
    expect(await configError(loadKeyPair(path))).toContain("is owned by uid 65534");
  });
});

describe("public key files", () => {
  test("round trip through writePublicKeyFile (mode 0644)", async () => {
    const path = fresh();
    const { publicKey } = generateStaticKeyPair();
    await writePublicKeyFile(path, publicKey);
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(await readFile(path, "utf-8")).toBe(`${formatPublicKey(publicKey)}\n`);
    expect(await loadPublicKey(path)).toEqual(publicKey);
    expect(await configError(writePublicKeyFile(path, publicKey))).toContain("already exists");
  });

  test("group- or world-writable is refused", async () => {
    const path = await put(`${formatPublicKey(generateStaticKeyPair().publicKey)}\n`, 0o666);
    expect(await configError(loadPublicKey(path))).toContain(`chmod go-w ${path}`);
  });

  test("a private key file is refused as a pinned key", async () => {
    const path = await put(formatKeyFile(generateStaticKeyPair()), 0o600);
    expect(await configError(loadPublicKey(path))).toContain("holds a private key");
  });

  test("a missing file says what to put there", async () => {
    expect(await configError(loadPublicKey(join(dir, "none")))).toContain("qa-pub:");
  });
});
