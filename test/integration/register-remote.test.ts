/**
 * The dom0 service qubesair.RegisterRemote (packaging/files/dom0/, Python, run against the dom0
 * stand-in's model through its qubesadmin stand-in) and its caller host/register-remote.ts, called
 * through the stand-in's qrexec-client-vm, whose policy decision is our evaluator over the
 * shipped policy files. Attacks by a compromised sys-remote: other qubes' names, other classes,
 * bad labels, injection in the remote name, malformed and oversized requests, more RemoteVMs than
 * the limit, removing what it did not register; by another qube: any call at all. Each is refused
 * with a clear answer and a non-zero exit, and dom0's model is unchanged.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REGISTER_REMOTE_LIMITS, Service } from "../../core/qrexec/services.ts";
import { makeDom0 } from "../../fixtures/qubes-dom0/dom0.ts";
import { RegisterError, registerRemoteVm, removeRemoteVm } from "../../host/register-remote.ts";

const ROOT = join(import.meta.dir, "..", "..");
const SCRIPT = join(ROOT, "packaging", "files", "dom0", Service.RegisterRemote);
const dir = mkdtempSync(join(tmpdir(), "qa-register-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const dom0 = makeDom0(dir);
const SR = "sys-remote";
const journal = join(dir, "journal");

function call(
  caller: string,
  name: string,
  request: string | Uint8Array,
  extra: Record<string, string> = {},
) {
  const r = spawnSync("qrexec-client-vm", ["dom0", `${Service.RegisterRemote}+${name}`], {
    env: dom0.env(caller, { QUBES_DOM0_JOURNAL: journal, ...extra }),
    input: request,
  });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function callAsync(caller: string, name: string, request: string): Promise<string> {
  const p = spawn("qrexec-client-vm", ["dom0", `${Service.RegisterRemote}+${name}`], {
    env: dom0.env(caller, { QUBES_DOM0_JOURNAL: journal }),
  });
  let out = "";
  p.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  p.stdin.end(request);
  return new Promise((resolve) => p.on("close", () => resolve(out)));
}

/** dom0 (the person) makes a qube directly. */
function made(argv: string[]) {
  const r = dom0.run(null, argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
}

made(["qvm-create", "--class", "AppVM", "--label", "black", "vault"]);
made(["qvm-create", "--class", "RemoteVM", "--label", "gray", "--prop", `relayvm=${SR}`, "by-hand"]);
// Tagged as if sys-remote made it, but relayed by another qube: still not sys-remote's to change.
made(["qvm-create", "--class", "RemoteVM", "--label", "gray", "--prop", "relayvm=sys-usb", "lent"]);
made(["qvm-tags", "lent", "add", `created-by-${SR}`]);

describe("qubesair.RegisterRemote", () => {
  test("registers a RemoteVM relayed by the caller, updates it, removes it", () => {
    // The caller's own environment cannot name another relay: qrexec sets QREXEC_REMOTE_DOMAIN.
    expect(call(SR, "pi-gpg", "register gray pi-gpg\n", { QREXEC_REMOTE_DOMAIN: "vault" })).toMatchObject({
      code: 0,
      stdout: "created\n",
    });
    const q = dom0.qubes()["pi-gpg"]!;
    expect(q.class).toBe("RemoteVM");
    expect(q.tags).toContain(`created-by-${SR}`);
    expect(q.prefs).toEqual({
      label: "gray",
      relayvm: SR,
      transport_rpc: Service.NoiseProxy,
      remote_name: "pi-gpg",
    });
    expect(call(SR, "pi-gpg", "register purple pi-gpg\n")).toMatchObject({ code: 0, stdout: "updated\n" });
    expect(dom0.qubes()["pi-gpg"]!.prefs).toMatchObject({ label: "purple", relayvm: SR });
    expect(call(SR, "pi-gpg", "unregister\n")).toMatchObject({ code: 0, stdout: "removed\n" });
    expect(dom0.qubes()["pi-gpg"]).toBeUndefined();
  });

  test("a compromised sys-remote is refused everything else, and dom0's model is unchanged", () => {
    expect(call(SR, "mine", "register gray mine\n").code).toBe(0);
    const before = JSON.stringify(dom0.qubes());
    const R = /^refused: [ -~]+\n$/;
    const B = /^bad request: [ -~]+\n$/;
    const long = "a".repeat(32);
    const cases: [string, string | Uint8Array, RegExp][] = [
      // other qubes' names: any class, made by dom0, relayed elsewhere, the caller itself
      ["work", "register gray work\n", R],
      ["vault", "register gray vault\n", R],
      ["sys-usb", "register gray sys-usb\n", R],
      ["debian-12-minimal", "register gray x\n", R],
      ["by-hand", "register gray by-hand\n", R],
      ["lent", "register gray lent\n", R],
      [SR, "register gray sys-remote\n", R],
      ["dom0", "register gray dom0\n", B],
      // names outside the qube-name grammar (the qrexec argument allows more)
      ...["9x", "-x", "_x", "x-dm", "Domain-0", "none", "default", long, "a+b", "+x"].map(
        (n) => [n, "register gray x\n", B] as [string, string, RegExp],
      ),
      // labels outside Qubes' list; a class instead of a label
      ["new1", "register pink new1\n", B],
      ["new1", "register RED new1\n", B],
      ["new1", "register  new1\n", B],
      ["new1", "register red;id new1\n", B],
      ["new1", "register AppVM new1\n", B],
      // injection in the remote name
      ...["pi;id", "$(id)", "`id`", "../x", "-x", "a/b", long, "pi\tgpg", "pi gpg", "π", "dom0", ""].map(
        (rn) => ["new1", `register gray ${rn}\n`, B] as [string, string, RegExp],
      ),
      // requests outside the grammar
      ["new1", "register gray new1 relayvm=vault\n", B],
      ["new1", "register gray new1", B],
      ["new1", "register gray new1\r\n", B],
      ["new1", "register gray new1\n\n", B],
      ["new1", "register gray new1\nunregister\n", B],
      ["new1", "Register gray new1\n", B],
      ["new1", "register  gray new1\n", B],
      ["new1", "register\n", B],
      ["new1", "unregister new1\n", B],
      ["new1", "", B],
      ["new1", "register gray new1\0\n", B],
      ["new1", `register gray ${"x".repeat(REGISTER_REMOTE_LIMITS.maxRequestBytes)}\n`, B],
      ["new1", new Uint8Array(1024 * 1024).fill(0x41), B],
      // removing what it did not register, or what is not there
      ["work", "unregister\n", R],
      ["vault", "unregister\n", R],
      ["by-hand", "unregister\n", R],
      ["lent", "unregister\n", R],
      ["ghost", "unregister\n", R],
    ];
    for (const [name, request, answer] of cases) {
      const r = call(SR, name, request);
      const shown = typeof request === "string" ? request : `${request.length} bytes`;
      expect({ name, shown, code: r.code, stdout: r.stdout }).toEqual({
        name,
        shown,
        code: answer === R ? 1 : 2,
        stdout: expect.stringMatching(answer),
      });
    }
    expect(JSON.stringify(dom0.qubes())).toBe(before);
    // dom0's journal has each refusal; nothing of the refused bytes reached the caller.
    expect(readFileSync(journal, "utf8").split("\n").filter(Boolean)).toHaveLength(cases.length);
  });

  test("another qube may not call it at all: the policy refuses, as qrexec does", () => {
    const before = JSON.stringify(dom0.qubes());
    for (const [name, request] of [
      ["w-remote", "register gray w-remote\n"],
      ["mine", "register red mine\n"],
      ["mine", "unregister\n"],
    ] as const) {
      expect(call("work", name, request)).toEqual({ code: 126, stdout: "", stderr: "Request refused\n" });
    }
    expect(JSON.stringify(dom0.qubes())).toBe(before);
  });

  test(`a relay has at most ${REGISTER_REMOTE_LIMITS.maxPerRelay} RemoteVMs, racing calls included`, async () => {
    // dom0 writes the earlier registrations straight into its model (as if made one by one).
    const model = JSON.parse(readFileSync(dom0.model, "utf8"));
    const mine = Object.values(dom0.qubes()).filter(
      (q) => q.prefs.relayvm === SR && q.tags.includes(`created-by-${SR}`),
    ).length;
    for (let i = mine; i < REGISTER_REMOTE_LIMITS.maxPerRelay; i++) {
      model.qubes[`dev-${i}`] = {
        class: "RemoteVM",
        prefs: { label: "gray", relayvm: SR, transport_rpc: Service.NoiseProxy, remote_name: `dev-${i}` },
        tags: [`created-by-${SR}`],
        features: {},
        assignments: [],
      };
    }
    writeFileSync(dom0.model, JSON.stringify(model));
    const before = JSON.stringify(dom0.qubes());
    const r = call(SR, "one-more", "register gray one-more\n");
    expect([r.code, r.stdout]).toEqual([
      1,
      `refused: ${SR} already relays ${REGISTER_REMOTE_LIMITS.maxPerRelay} RemoteVMs; unregister one first\n`,
    ]);
    expect(JSON.stringify(dom0.qubes())).toBe(before);
    expect(call(SR, "dev-1", "register gray dev-1\n").stdout).toBe("updated\n"); // its own: still fine
    // Racing calls cannot pass the limit together: with two places free, six at once make two.
    for (const n of ["dev-1", "dev-2"]) expect(call(SR, n, "unregister\n").stdout).toBe("removed\n");
    const racers = Array.from({ length: 6 }, (_, i) => `race-${i}`);
    const answers = await Promise.all(racers.map((n) => callAsync(SR, n, `register gray ${n}\n`)));
    expect(answers.filter((a) => a === "created\n")).toHaveLength(2);
    expect(answers.filter((a) => a.startsWith(`refused: ${SR} already relays`))).toHaveLength(4);
    const won = racers.filter((_, i) => answers[i] === "created\n");
    for (const n of won) expect(call(SR, n, "unregister\n").stdout).toBe("removed\n"); // room for the tests below
    expect(call(SR, "dev-3", "unregister\n").stdout).toBe("removed\n");
  });

  test("the script's limits and names are the ones in core/qrexec/services.ts", () => {
    const text = readFileSync(SCRIPT, "utf8");
    const num = (k: string) => Number(new RegExp(`^${k} = (\\d+)$`, "m").exec(text)?.[1]);
    expect(num("MAX_REQUEST_BYTES")).toBe(REGISTER_REMOTE_LIMITS.maxRequestBytes);
    expect(num("MAX_PER_RELAY")).toBe(REGISTER_REMOTE_LIMITS.maxPerRelay);
    expect(text).toContain(`TRANSPORT_RPC = "${Service.NoiseProxy}"`);
  });
});

describe("host/register-remote.ts", () => {
  const env = (caller: string, path = dom0.path) => ({ ...dom0.env(caller), PATH: path });

  test("registers and removes through the service", async () => {
    expect(await registerRemoteVm({ name: "ts-dev", label: "green" }, { env: env(SR) })).toBe("created");
    expect(await registerRemoteVm({ name: "ts-dev", label: "blue" }, { env: env(SR) })).toBe("updated");
    expect(dom0.qubes()["ts-dev"]!.prefs).toMatchObject({ label: "blue", relayvm: SR });
    await removeRemoteVm("ts-dev", { env: env(SR) });
    expect(dom0.qubes()["ts-dev"]).toBeUndefined();
  });

  test("the program named as the qrexec client (the daemon's --qrexec-client) is the one run", async () => {
    const standIns = dom0.path.split(":")[0]!;
    const plain = process.env.PATH ?? "/usr/bin:/bin"; // no stand-in on it: only `client` reaches dom0
    const via = { client: join(standIns, "qrexec-client-vm"), env: env(SR, plain) };
    expect(await registerRemoteVm({ name: "cl-dev", label: "green" }, via)).toBe("created");
    await removeRemoteVm("cl-dev", via);
    expect(dom0.qubes()["cl-dev"]).toBeUndefined();
    const missing = registerRemoteVm(
      { name: "cl-dev", label: "green" },
      { ...via, client: join(dir, "no-such-client") },
    );
    await expect(missing).rejects.toThrow(`${join(dir, "no-such-client")} is not installed in this qube`);
  });

  test("dom0's refusal, the policy's refusal and a missing qrexec-client-vm are RegisterErrors that say why", async () => {
    const taken = registerRemoteVm({ name: "vault", label: "red" }, { env: env(SR) });
    await expect(taken).rejects.toBeInstanceOf(RegisterError);
    await expect(taken).rejects.toThrow(
      "dom0 would not register the RemoteVM vault: refused: vault is a qube sys-remote did not register",
    );
    await expect(removeRemoteVm("by-hand", { env: env(SR) })).rejects.toThrow(
      "dom0 would not remove the RemoteVM by-hand: refused: sys-remote registered no RemoteVM named by-hand",
    );
    const policy = registerRemoteVm({ name: "w-dev", label: "red" }, { env: env("work") });
    await expect(policy).rejects.toBeInstanceOf(RegisterError);
    await expect(policy).rejects.toThrow(
      "dom0's qrexec policy refuses qubesair.RegisterRemote from this qube",
    );
    const none = registerRemoteVm({ name: "x-dev", label: "red" }, { env: env(SR, join(dir, "empty-path")) });
    await expect(none).rejects.toThrow("qrexec-client-vm is not installed in this qube");
    expect(dom0.qubes()["w-dev"]).toBeUndefined();
    expect(dom0.qubes()["x-dev"]).toBeUndefined();
  });
});
