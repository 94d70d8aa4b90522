/**
 * The dom0 package's Admin API policy (45-qubes-air-admin.policy) as dom0 enforces it, through the
 * dom0 stand-in in Admin API mode (fixtures/qubes-dom0: each qvm-* command becomes its Admin API
 * calls, each decided by our qrexec policy evaluator over the shipped policy files): sys-remote
 * may create RemoteVMs and set their relayvm, transport_rpc, remote_name and label, and remove
 * them, but only those it created; a compromised sys-remote cannot create another class, touch
 * any other qube (even one it names directly, skipping the listing), set other properties, tags
 * or features, or take over a qube by giving it its created-by tag. Refusals print the Admin
 * API client's own error and change nothing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeDom0 } from "../../fixtures/qubes-dom0/dom0.ts";

const EMPTY = "Got empty response from qubesd. See journalctl in dom0 for details.";
const dir = mkdtempSync(join(tmpdir(), "qa-dom0-admin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dom0 = makeDom0(dir);
const SR = "sys-remote";

describe("sys-remote through the Admin API", () => {
  test("creates a RemoteVM (tagged created-by-sys-remote by dom0), sets its four properties, removes it", () => {
    expect(dom0.run(SR, ["qvm-create", "--class", "RemoteVM", "--label", "gray", "pi-gpg"]).code).toBe(0);
    for (const [prop, value] of [
      ["relayvm", SR],
      ["transport_rpc", "qubesair.NoiseProxy"],
      ["remote_name", "pi-gpg"],
      ["label", "purple"],
    ]) {
      expect(dom0.run(SR, ["qvm-prefs", "pi-gpg", prop!, value!])).toMatchObject({ code: 0 });
      expect(dom0.run(SR, ["qvm-prefs", "pi-gpg", prop!]).stdout).toBe(`${value}\n`);
    }
    const q = dom0.qubes()["pi-gpg"]!;
    expect(q.class).toBe("RemoteVM");
    expect(q.tags).toEqual(["created-by-sys-remote"]);
    expect(q.prefs).toEqual({
      label: "purple",
      relayvm: SR,
      transport_rpc: "qubesair.NoiseProxy",
      remote_name: "pi-gpg",
    });
    expect(dom0.run(SR, ["qvm-check", "pi-gpg"]).code).toBe(0);
    expect(dom0.run(SR, ["qvm-remove", "--force", "pi-gpg"]).code).toBe(0);
    expect(dom0.qubes()["pi-gpg"]).toBeUndefined();
  });

  test("a compromised sys-remote is refused everything else, with the client's error, and nothing changes", () => {
    expect(dom0.run(SR, ["qvm-create", "--class", "RemoteVM", "--label", "gray", "mine"]).code).toBe(0);
    expect(dom0.run(null, ["qvm-create", "--class", "RemoteVM", "--label", "gray", "by-hand"]).code).toBe(0);
    const before = JSON.stringify(dom0.qubes());
    const blind = { QUBES_ADMIN_BLIND: "1" }; // naming qubes directly, as a raw qrexec caller would
    const refusals: [string[], Record<string, string>, string][] = [
      // another class
      [["qvm-create", "--class", "AppVM", "--label", "red", "evil"], {}, `app: Error creating VM: ${EMPTY}`],
      [
        ["qvm-create", "--class", "StandaloneVM", "--label", "red", "evil"],
        {},
        `app: Error creating VM: ${EMPTY}`,
      ],
      // qubes it did not create: not even listed...
      [["qvm-prefs", "work", "netvm", ""], {}, "qvm-prefs: error: no such domain: 'work'"],
      [["qvm-prefs", "by-hand", "relayvm", SR], {}, "qvm-prefs: error: no such domain: 'by-hand'"],
      // ...and refused by the policy when named directly
      [["qvm-prefs", "work", "netvm", ""], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "by-hand", "relayvm", SR], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-prefs", "by-hand", "label"], blind, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-remove", "--force", "by-hand"], blind, `qvm-remove: error: ${EMPTY}`],
      [["qvm-remove", "--force", "work"], blind, `qvm-remove: error: ${EMPTY}`],
      [["qvm-prefs", "dom0", "default_netvm", "work"], blind, `qvm-prefs: error: ${EMPTY}`],
      // its own RemoteVM: other properties, tags (could match other policy rules), features
      [["qvm-prefs", "mine", "include_in_backups", "True"], {}, `qvm-prefs: error: ${EMPTY}`],
      [["qvm-tags", "mine", "add", "work"], {}, `qvm-tags: error: ${EMPTY}`],
      [["qvm-tags", "mine", "del", "created-by-sys-remote"], {}, `qvm-tags: error: ${EMPTY}`],
      [["qvm-features", "mine", "gui", "1"], {}, `qvm-features: error: ${EMPTY}`],
      // taking over a qube by giving it the created-by tag
      [["qvm-tags", "by-hand", "add", "created-by-sys-remote"], blind, `qvm-tags: error: ${EMPTY}`],
      [["qvm-tags", "work", "add", "created-by-sys-remote"], blind, `qvm-tags: error: ${EMPTY}`],
      // starting qubes, assigning devices
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
    expect(dom0.run(SR, ["qvm-check", "work"]).code).toBe(1); // hidden from its listing
  });

  test("another qube gets none of these rights, and the rules name sys-remote only", () => {
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
