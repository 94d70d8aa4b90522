/**
 * sys-remote has no Admin API rights in dom0 (the dom0 package ships no admin.* rule for it; it
 * registers RemoteVMs only through qubesair.RegisterRemote, test/integration/register-remote.test.ts).
 * Attacked through the dom0 stand-in in Admin API mode (fixtures/qubes-dom0: each qvm-* command
 * becomes its Admin API calls, each decided by our qrexec policy evaluator over the shipped policy
 * files): a compromised sys-remote cannot point its own RemoteVM's relayvm or transport_rpc at
 * another qube or service (the hole the Admin API rights had: relayvm=vault,
 * transport_rpc=qubes.VMShell), nor create, remove, relabel or retag anything, even naming qubes
 * directly. Refusals print the Admin API client's own error and change nothing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeDom0 } from "../../fixtures/qubes-dom0/dom0.ts";

const EMPTY = "Got empty response from qubesd. See journalctl in dom0 for details.";
const dir = mkdtempSync(join(tmpdir(), "qa-dom0-admin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dom0 = makeDom0(dir);
const SR = "sys-remote";

function register(caller: string, name: string, request: string) {
  const r = spawnSync("qrexec-client-vm", ["dom0", `qubesair.RegisterRemote+${name}`], {
    env: dom0.env(caller),
    input: request,
  });
  return { code: r.status, stdout: r.stdout.toString() };
}

describe("sys-remote and the Admin API", () => {
  test("the dom0 package's policy files give sys-remote no admin.* rule at all", () => {
    for (const f of readdirSync(dom0.policyDir)) {
      const rules = readFileSync(join(dom0.policyDir, f), "utf8")
        .split("\n")
        .filter((l) => /^\s*admin\./.test(l));
      expect({ f, rules }).toEqual({ f, rules: [] });
    }
  });

  test("a compromised sys-remote cannot redirect its own RemoteVM, or do anything else, through the Admin API", () => {
    expect(register(SR, "mine", "register gray mine\n")).toEqual({ code: 0, stdout: "created\n" });
    expect(dom0.run(null, ["qvm-create", "--class", "RemoteVM", "--label", "gray", "by-hand"]).code).toBe(0);
    expect(dom0.run(null, ["qvm-create", "--class", "AppVM", "--label", "black", "vault"]).code).toBe(0);
    const before = JSON.stringify(dom0.qubes());
    const blind = { QUBES_ADMIN_BLIND: "1" }; // naming qubes directly, as a raw qrexec caller would
    const refusals: [string[], Record<string, string>, string][] = [
      // the hole: its own RemoteVM's relay pointed at another qube, with another service
      [["qvm-prefs", "mine", "relayvm", "vault"], {}, `qvm-prefs: error: ${EMPTY}`], // even the listing
      [["qvm-prefs", "mine", "relayvm", "vault"], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "mine", "transport_rpc", "qubes.VMShell"], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "mine", "remote_name", "other"], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "mine", "label", "red"], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "mine", "relayvm", "--default"], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "-D", "mine", "relayvm"], blind, `qvm-prefs: error: ${EMPTY}`],
      // creating anything, of any class, directly
      [
        ["qvm-create", "--class", "RemoteVM", "--label", "gray", "evil"],
        {},
        `app: Error creating VM: ${EMPTY}`,
      ],
      [
        ["qvm-create", "--class", "RemoteVM", "--label", "gray", "--prop", "relayvm=vault", "evil"],
        {},
        `app: Error creating VM: ${EMPTY}`,
      ],
      [["qvm-create", "--class", "AppVM", "--label", "red", "evil"], {}, `app: Error creating VM: ${EMPTY}`],
      // removing, retagging (a tag could match other policy rules), features
      [["qvm-remove", "--force", "mine"], blind, `qvm-remove: error: ${EMPTY}`],
      [["qvm-remove", "--force", "by-hand"], blind, `qvm-remove: error: ${EMPTY}`],
      [["qvm-tags", "mine", "add", "work"], blind, `qvm-tags: error: ${EMPTY}`],
      [["qvm-tags", "by-hand", "add", "created-by-sys-remote"], blind, `qvm-tags: error: ${EMPTY}`],
      [["qvm-tags", "mine", "del", "created-by-sys-remote"], blind, `qvm-tags: error: ${EMPTY}`],
      [["qvm-features", "mine", "gui", "1"], blind, `qvm-features: error: ${EMPTY}`],
      // other qubes
      [["qvm-prefs", "work", "netvm", ""], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "dom0", "default_netvm", "work"], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-start", "work"], blind, `qvm-start: error: ${EMPTY}`],
      [["qvm-usb", "attach", "--persistent", "work", "sys-usb:2-1"], blind, `qvm-usb: error: ${EMPTY}`],
    ];
    for (const [argv, extra, error] of refusals) {
      const r = dom0.run(SR, argv, extra);
      expect({ argv, code: r.code > 0, stderr: r.stderr.trim() }).toEqual({
        argv,
        code: true,
        stderr: error,
      });
    }
    expect(JSON.stringify(dom0.qubes())).toBe(before);
    expect(dom0.qubes().mine!.prefs).toMatchObject({ relayvm: SR, transport_rpc: "qubesair.NoiseProxy" });
    for (const name of ["mine", "work", "by-hand"]) expect(dom0.run(SR, ["qvm-check", name]).code).toBe(1);
  });

  test("another qube gets none of these rights either", () => {
    const r = dom0.run("work", ["qvm-create", "--class", "RemoteVM", "--label", "gray", "w-remote"]);
    expect([r.code, r.stderr.trim()]).toEqual([1, `app: Error creating VM: ${EMPTY}`]);
    const own = dom0.run("work", ["qvm-prefs", "mine", "relayvm", "work"], { QUBES_ADMIN_BLIND: "1" });
    expect([own.code, own.stderr.trim()]).toEqual([1, `qvm-prefs: error: ${EMPTY}`]);
  });

  test("dom0 itself is not restricted by the stand-in's Admin API mode", () => {
    expect(dom0.run(null, ["qvm-prefs", "work", "label", "green"]).code).toBe(0);
    expect(dom0.qubes().work!.prefs.label).toBe("green");
  });
});
