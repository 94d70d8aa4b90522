/**
 * copy-to (qubes.Filecopy, like qvm-copy-to-vm) and copy-from (qubesair.CopyFrom) through the
 * daemon and the real agent: trees with subdirectories and links arrive intact, progress is
 * shown for long copies, refusals are clear.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { isQubeName } from "../../core/qrexec/names.ts";
import {
  type Agent,
  cleanup,
  cli,
  DEVICE,
  type Host,
  pairedHost,
  tempDir,
} from "../../fixtures/qubes-stubs/harness.ts";

setDefaultTimeout(30_000);

let agent: Agent;
let host: Host;
beforeAll(async () => {
  ({ agent, host } = await pairedHost());
}, 60_000);
afterAll(cleanup);

const here = isQubeName(hostname()) ? hostname() : "sys-remote";

describe("file copies", () => {
  test("copy-to sends a tree to ~/QubesIncoming/<this qube>/ on the device, with progress", async () => {
    const src = join(tempDir(), "bundle");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), "hello\n");
    const big = randomBytes(3 * 1024 * 1024 + 5);
    writeFileSync(join(src, "sub", "big.bin"), big, { mode: 0o640 });
    symlinkSync("../a.txt", join(src, "sub", "link"));
    const r = await cli(host, ["copy-to", DEVICE, src]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/sent 3073\/3073 KiB\n$/);
    const dest = join(agent.dir, "home", "QubesIncoming", here, "bundle");
    expect(readFileSync(join(dest, "a.txt"), "utf8")).toBe("hello\n");
    expect(Buffer.compare(readFileSync(join(dest, "sub", "big.bin")), big)).toBe(0);
    expect(statSync(join(dest, "sub", "big.bin")).mode & 0o777).toBe(0o640);
    expect(readlinkSync(join(dest, "sub", "link"))).toBe("../a.txt");
    // nothing is overwritten: a second copy of the same name is refused by the device
    const again = await cli(host, ["copy-to", "--without-progress", DEVICE, src]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("File copy: file already exists");
  });

  test("copy-from fetches files of the export directory into --to DIR", async () => {
    const exported = join(agent.dir, "home", "QubesOutgoing");
    mkdirSync(join(exported, "logs"), { recursive: true });
    const file = join(exported, "notes.txt");
    writeFileSync(file, "from the device\n");
    writeFileSync(join(exported, "logs", "one.log"), "1\n");
    const to = join(tempDir(), "in");
    const r = await cli(host, ["copy-from", DEVICE, file, "logs", "--to", to]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(readFileSync(join(to, "notes.txt"), "utf8")).toBe("from the device\n");
    expect(readFileSync(join(to, "logs", "one.log"), "utf8")).toBe("1\n");
    expect(lstatSync(to).mode & 0o777).toBe(0o700);
    const missing = await cli(host, ["copy-from", DEVICE, "nonexistent/file", "--to", to]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      'qubesair.CopyFrom: "nonexistent/file" does not exist in the export directory\n',
    );
    // the device's refusal reaches the user as the device wrote it, and nothing lands
    const key = await cli(host, ["copy-from", DEVICE, join(agent.dir, "state", "device.key"), "--to", to]);
    expect(key.code).toBe(1);
    expect(key.stderr.split("\n")[0]).toBe(
      `qubesair.CopyFrom: "${join(agent.dir, "state", "device.key")}" is outside the export directory ` +
        `${exported}; name a path inside it (relative paths start there)`,
    );
    const secret = await cli(host, ["copy-from", DEVICE, "../../state/device.key", "--to", to]);
    expect(secret.code).toBe(1);
    expect(secret.stderr).toContain('".." is not allowed');
    expect(existsSync(join(to, "device.key"))).toBe(false);
  });

  test("copy failures are said in words: no stack trace, no bare errno or error name", async () => {
    const missing = join(tempDir(), "no-such-file");
    const r = await cli(host, ["copy-to", DEVICE, missing]);
    expect([r.code, r.stderr]).toEqual([
      1,
      `qubes-air copy-to: cannot stat "${missing}": no such file or directory (ENOENT)\n`,
    ]);
    // copy-from into a path whose parent is a file: the host's unpacker cannot make DIR
    const exported = join(agent.dir, "home", "QubesOutgoing");
    mkdirSync(exported, { recursive: true });
    writeFileSync(join(exported, "w.txt"), "w\n");
    const file = join(tempDir(), "a-file");
    writeFileSync(file, "");
    const into = await cli(host, ["copy-from", DEVICE, "w.txt", "--to", join(file, "in")]);
    expect(into.code).toBe(1);
    // (the device may also say that the receiver refused, if our reply reached it first)
    expect(into.stderr).toMatch(
      /^(qubesair\.CopyFrom: the receiver refused: File copy: not a directory\n)?qubes-air: File copy: not a directory\n$/,
    );
  });

  test("copy-to refuses unsafe arguments before anything is sent", async () => {
    const r = await cli(host, ["copy-to", DEVICE, "/"]);
    // A bad argument is an operator fault: EXIT.USAGE, as on the device (core/cli/exit-codes.ts).
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^qubes-air copy-to: /);
  });
});
