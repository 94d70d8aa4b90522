/**
 * The README's demo command must keep working on a fresh machine: it runs to the end by itself,
 * every step reports success, and it leaves no process behind.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

test("bun run demo completes a whole zone and cleans up", async () => {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "../../demo/zone-demo.ts")], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" });
  expect(out).toContain("pi-gpg: paired");
  expect(out).toContain("cloud-build: paired");
  expect(out).toMatch(/pi-gpg\s+usb\s+\S+ \S+\s+up/);
  expect(out).toMatch(/demo\.Sha256 {2}exit 0: (\w+) \(local: \1\) match/);
  expect(out).toContain("demo.Secret  exit 126");
  expect(out).toContain("qrexec saw: source=cloud-build target=vault service=demo.Vault");
  expect(out).toMatch(/original (\w+) {2}on device \1 {2}back \1/);
  expect(out).toContain("done:");
}, 120_000);
