/** `ssh-setup` with the real ssh-keygen: generate, import, and what it refuses. */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../../core/errors.ts";
import { platform } from "../../../platform/index.ts";
import { parseSshSetupArgs, sshSetup } from "./keysetup.ts";

const dir = mkdtempSync(join(tmpdir(), "qa-ssh-setup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function keygen(path: string, passphrase: string): Promise<void> {
  const p = await platform.spawn(
    ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "usb", "-f", path],
    {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
    },
  );
  expect((await p.exited).code).toBe(0);
}

describe("ssh-setup", () => {
  test("generate: an ed25519 key, 0600 in <dir>/keys; a second --generate does not overwrite it", async () => {
    const ssh = join(dir, "gen");
    const pub = await sshSetup({
      sshDir: ssh,
      generate: true,
      comment: "dev key",
      exportFile: join(dir, "gen.pub"),
    });
    expect(pub).toMatch(/^ssh-ed25519 \S+ dev key\n$/);
    expect(readFileSync(join(dir, "gen.pub"), "utf8")).toBe(pub);
    expect(statSync(join(ssh, "keys", "id_ed25519")).mode & 0o777).toBe(0o600);
    expect(statSync(join(ssh, "keys")).mode & 0o777).toBe(0o700);
    await expect(sshSetup({ sshDir: ssh, generate: true, exportFile: null })).rejects.toBeInstanceOf(
      ConfigError,
    );
  });

  test("import: a key without a passphrase (even one others could read); one with a passphrase is refused", async () => {
    const ssh = join(dir, "imp");
    const plain = join(dir, "usb_key");
    await keygen(plain, "");
    chmodSync(plain, 0o644); // as files on a FAT USB stick look
    const pub = await sshSetup({ sshDir: ssh, generate: false, importFile: plain, exportFile: null });
    expect(pub).toContain("ssh-ed25519 ");
    expect(statSync(join(ssh, "keys", "usb_key")).mode & 0o777).toBe(0o600);
    const locked = join(dir, "locked_key");
    await keygen(locked, "secret passphrase");
    await expect(
      sshSetup({ sshDir: ssh, generate: false, importFile: locked, exportFile: null }),
    ).rejects.toThrow(/passphrase/);
    expect(() => statSync(join(ssh, "keys", "locked_key"))).toThrow(); // nothing left behind
    writeFileSync(join(dir, "junk"), "not a key\n");
    await expect(
      sshSetup({ sshDir: ssh, generate: false, importFile: join(dir, "junk"), exportFile: null }),
    ).rejects.toBeInstanceOf(ConfigError);
  });

  test("arguments: one source at most, plain file names, printable comments", () => {
    expect(() => parseSshSetupArgs(["--generate", "--import", "x"], dir)).toThrow(ConfigError);
    expect(() => parseSshSetupArgs(["--generate", "--name", "../evil"], dir)).toThrow(ConfigError);
    expect(() => parseSshSetupArgs(["--generate", "--name", "k.pub"], dir)).toThrow(ConfigError);
    expect(() => parseSshSetupArgs(["--generate", "--comment", "a\nb"], dir)).toThrow(ConfigError);
    expect(parseSshSetupArgs(["--generate"], dir)).toMatchObject({
      sshDir: dir,
      generate: true,
      exportFile: null,
    });
    expect(parseSshSetupArgs(["--help"], dir)).toBe("help");
  });
});
