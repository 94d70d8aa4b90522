/**
 * The GnuPG 2.4 test root (test/setup/gnupg24-root.sh, gpg-versions.ts): building it again is
 * a no-op that returns the same root, its gpg really is 2.4 and runs inside it, and a root that
 * cannot be had is a failure under CI=true but a skip elsewhere (the project rule).
 */
import { describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { capture } from "../../agent/services/gpg/gpg-tools.ts";
import { Gnupg24Unavailable, gnupg24, isUnavailable } from "./gpg-versions.ts";

const SCRIPT = join(import.meta.dir, "../setup/gnupg24-root.sh");
const asRoot = process.getuid?.() === 0;
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("the GnuPG 2.4 root", () => {
  test.skipIf(!asRoot && process.env.CI !== "true")(
    "is built once and then reused as it is",
    async () => {
      const first = await gnupg24();
      expect(isUnavailable(first)).toBe(false);
      const again = await capture(["sh", SCRIPT], { timeoutMs: 60_000 });
      const root = dec(again.stdout).trim();
      const stamp = statSync(join(root, ".qubes-air-complete")).mtimeMs;
      const third = await capture(["sh", SCRIPT], { timeoutMs: 60_000 });
      expect([again.status, third.status]).toEqual([0, 0]);
      expect(dec(third.stdout).trim()).toBe(root);
      expect(statSync(join(root, ".qubes-air-complete")).mtimeMs).toBe(stamp);
    },
    900_000,
  );

  test.skipIf(!asRoot && process.env.CI !== "true")(
    "its gpg and gpg-agent are 2.4, run inside the root",
    async () => {
      const v = await gnupg24();
      if (isUnavailable(v)) throw new Error(v.reason);
      expect(v.version).toStartWith("2.4.");
      const agent = await capture([v.gpgconf, "--list-components"]);
      expect(dec(agent.stdout)).toMatch(/^gpg-agent:[^\n]*:\/usr\/bin\/gpg-agent$/m);
      const host = await capture(["gpg", "--version"]);
      expect(dec(host.stdout)).not.toContain(`gpg (GnuPG) ${v.version}\n`);
    },
  );

  test("a root that cannot be built: a failure under CI, a skip elsewhere", async () => {
    const root = "/dev/null/cannot-be-a-directory";
    await expect(gnupg24({ root, ci: true })).rejects.toBeInstanceOf(Gnupg24Unavailable);
    const got = await gnupg24({ root, ci: false });
    expect(isUnavailable(got)).toBe(true);
  });
});
