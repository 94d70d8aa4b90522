/**
 * The Salt formula (salt/qubes-air) applied by real Salt 3008 (`salt-call --local`, from the venv
 * scripts/salt-venv.sh builds): dom0 is the stand-in qvm-* tools of fixtures/qubes-dom0 over a
 * JSON model; the template and sys-remote states go into a throwaway directory (Salt's `pkg`
 * module is the stand-in fixtures/qubes-dom0/salt-modules/stubpkg.py; everything else is real).
 * Checks: the example pillar gives exactly the qubes, prefs, tags, services, features,
 * assignments and policy it names; a second apply changes nothing; qubes-air.remove brings the
 * model back to the start; the policy parses under core/qrexec/policy-parse.ts; an empty pillar
 * fails naming the missing keys; 4.2 assigns USB by port; a refused qvm-* step fails the state.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parsePolicy, selectPolicyFiles } from "../../core/qrexec/policy-parse.ts";
import { parseRegistry } from "../../host/daemon/registry.ts";
import { lacking } from "../helpers/requires.ts";

const ROOT = resolve(import.meta.dir, "../..");
const FORMULA = join(ROOT, "salt");
const DOM0 = join(ROOT, "fixtures/qubes-dom0");
const SETUP_MS = 15 * 60_000;
const RUN_MS = 5 * 60_000;

const hasPython = spawnSync("sh", ["-c", "command -v python3 && test -x /usr/bin/python3"]).status === 0;

interface StateResult {
  __id__: string;
  result: boolean;
  changes: Record<string, unknown>;
  comment: string;
  __run_num__: number;
}
interface Run {
  code: number | null;
  states: StateResult[];
  stderr: string;
}
type Json = Record<string, unknown>;
interface Qube {
  class: string;
  prefs: Record<string, unknown>;
  tags: string[];
  features: Record<string, string>;
  assignments: { backend: string; port: string; device: string; mode: string }[];
}
interface Model {
  version: string;
  qubes: Record<string, Qube>;
}

let venv = "";
const dirs: string[] = [];

/** A Salt setup in a temp dir: minion config, pillar (the example plus JSON overrides), model. */
function setup(opts: { id: string; pillar: "example" | "empty"; overrides?: Json; version?: string }) {
  const dir = mkdtempSync(join(tmpdir(), "qa-salt-"));
  dirs.push(dir);
  for (const d of ["conf", "root", "pillar", "policy.d", "target"]) mkdirSync(join(dir, d));
  writeFileSync(
    join(dir, "conf/minion"),
    [
      `root_dir: ${dir}/root`,
      "file_client: local",
      `id: ${opts.id}`,
      // No DNS or GPU probing: this machine has neither, and it costs seconds per run.
      "enable_fqdns_grains: false",
      "enable_gpu_grains: false",
      `module_dirs: [${DOM0}/salt-modules]`,
      `stubpkg_db: ${dir}/target/pkgs.json`,
      "",
    ].join("\n"),
  );
  const tops = opts.pillar === "example" ? ["qubes-air", "overrides"] : [];
  writeFileSync(join(dir, "pillar/top.sls"), `base:\n  '*': ${JSON.stringify(tops)}\n`);
  if (opts.pillar === "example") {
    writeFileSync(join(dir, "pillar/qubes-air.sls"), readFileSync(join(FORMULA, "pillar.example")));
    const overrides = { "qubes-air": { policy_dir: join(dir, "policy.d"), ...(opts.overrides ?? {}) } };
    writeFileSync(join(dir, "pillar/overrides.sls"), `${JSON.stringify(overrides)}\n`);
  }
  const model = join(dir, "model.json");
  const init = spawnSync(join(DOM0, "qvm.py"), ["init", model, opts.version ?? "4.3"]);
  expect(init.status).toBe(0);
  return { dir, model, policyDir: join(dir, "policy.d") };
}

function salt(dir: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    join(venv, "bin/salt-call"),
    [
      "--local",
      "-c",
      join(dir, "conf"),
      `--file-root=${FORMULA}`,
      `--pillar-root=${join(dir, "pillar")}`,
      "--out=json",
      "--retcode-passthrough",
      ...args,
    ],
    {
      encoding: "utf8",
      timeout: RUN_MS,
      env: { ...process.env, PATH: `${DOM0}:${process.env.PATH}`, QUBES_DOM0_MODEL: join(dir, "model.json") },
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function apply(dir: string, sls: string): Run {
  const r = salt(dir, ["state.apply", sls]);
  const out = JSON.parse(r.stdout) as { local: Record<string, StateResult> | string[] };
  if (Array.isArray(out.local)) throw new Error(`salt could not compile ${sls}: ${out.local.join("\n")}`);
  const states = Object.values(out.local).sort((a, b) => a.__run_num__ - b.__run_num__);
  return { code: r.code, states, stderr: r.stderr };
}

function pillar(dir: string): Json {
  const r = salt(dir, ["pillar.items", "unmask=True"]);
  expect(r.code).toBe(0);
  return ((JSON.parse(r.stdout) as { local: Json }).local["qubes-air"] ?? {}) as Json;
}

const readModel = (path: string) => JSON.parse(readFileSync(path, "utf8")) as Model;
const failed = (run: Run) => run.states.filter((s) => !s.result).map((s) => `${s.__id__}: ${s.comment}`);
const changed = (run: Run) =>
  run.states.filter((s) => Object.keys(s.changes).length > 0).map((s) => s.__id__);

function startModel(version: string): Model {
  const path = join(mkdtempSync(join(tmpdir(), "qa-salt-start-")), "m.json");
  dirs.push(resolve(path, ".."));
  expect(spawnSync(join(DOM0, "qvm.py"), ["init", path, version]).status).toBe(0);
  return readModel(path);
}

/** The tag create puts on the qubes it makes (and only those), so remove takes only them back. */
const CREATED = "qubes-air-created";

/** What the pillar asks for, computed here from the pillar Salt rendered (not from the formula). */
function expectedModel(p: Json, version: string): Model {
  const m = startModel(version);
  const relays = p.relays as Record<string, Json>;
  const remotes = p.remotes as Record<string, Json>;
  for (const [name, r] of Object.entries(relays)) {
    m.qubes[name] = {
      class: "AppVM",
      prefs: { label: r.label, template: r.template, memory: r.memory, netvm: r.netvm, guivm: "" },
      tags: [CREATED],
      features: { gui: "", servicevm: "1", "service.qubes-air": "1" },
      assignments: [],
    };
  }
  for (const [name, d] of Object.entries(remotes)) {
    const usb = d.usb as Json | undefined;
    const relay = m.qubes[d.relay as string];
    if (usb && relay) {
      relay.assignments.push(
        version === "4.3"
          ? {
              backend: usb.backend as string,
              port: "*",
              device: usb.device_id as string,
              mode: "auto-attach",
            }
          : { backend: usb.backend as string, port: usb.port as string, device: "*", mode: "persistent" },
      );
    }
    if (version !== "4.3") continue;
    m.qubes[name] = {
      class: "RemoteVM",
      prefs: {
        label: "gray",
        relayvm: d.relay,
        transport_rpc: d.transport_rpc ?? "qubesair.NoiseProxy",
        remote_name: d.remote_name ?? name,
      },
      tags: [...(d.tags as string[]), CREATED],
      features: {},
      assignments: [],
    };
  }
  return m;
}

/** What the stand-in's qvm-prefs prints for an AppVM property never set (fixtures/qubes-dom0/qvm.py). */
const INHERITED: Record<string, unknown> = { memory: 400, netvm: "sys-firewall", guivm: "dom0" };

/**
 * Model comparison by effective value: a pref set to what it inherits anyway counts as unset
 * (the guard sees the same value, as Qubes' own qvm.prefs does), and key and tag order is ignored.
 */
function normal(m: Model): unknown {
  const qubes = Object.fromEntries(
    Object.entries(m.qubes)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, q]) => [
        k,
        {
          ...q,
          prefs: Object.fromEntries(
            Object.entries(q.prefs)
              .filter(([p, v]) => q.class !== "AppVM" || INHERITED[p] !== v)
              .sort(),
          ),
          features: Object.fromEntries(Object.entries(q.features).sort()),
          tags: [...q.tags].sort(),
        },
      ]),
  );
  return { version: m.version, qubes };
}

function policyOf(policyDir: string, name: string) {
  const file = { name, text: readFileSync(join(policyDir, name), "utf8") };
  expect(selectPolicyFiles([file]).map((f) => f.name)).toEqual([name]);
  return parsePolicy([file]);
}

describe.skipIf(lacking(hasPython ? null : "python3 and python3-venv (for scripts/salt-venv.sh)"))(
  "the Salt formula under real salt-call",
  () => {
    beforeAll(() => {
      const r = spawnSync(join(ROOT, "scripts/salt-venv.sh"), { encoding: "utf8", timeout: SETUP_MS });
      if (r.status !== 0) throw new Error(`scripts/salt-venv.sh failed: ${r.stderr}`);
      venv = r.stdout.trim();
    }, SETUP_MS);
    afterAll(() => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    test(
      "example pillar: create gives exactly what it asks for, a second apply changes nothing, remove undoes it",
      () => {
        const s = setup({ id: "dom0", pillar: "example" });
        const p = pillar(s.dir);
        const first = apply(s.dir, "qubes-air.create");
        expect(failed(first)).toEqual([]);
        expect(first.code).toBe(0);
        expect(normal(readModel(s.model))).toEqual(normal(expectedModel(p, "4.3")));
        // Never a required assignment: the relay must start without its devices.
        for (const q of Object.values(readModel(s.model).qubes)) {
          for (const a of q.assignments) expect(a.mode).not.toBe("required");
        }

        const policy = policyOf(s.policyDir, "40-qubes-air.policy");
        const rules = p.policy as Json[];
        const remotes = Object.keys(p.remotes as Json);
        expect(policy.rules.length).toBe(rules.length + remotes.length);
        expect(policy.rules.slice(-remotes.length).every((r) => r.action.kind === "deny")).toBe(true);

        const before = readFileSync(s.model, "utf8");
        const second = apply(s.dir, "qubes-air.create");
        expect(failed(second)).toEqual([]);
        expect(changed(second)).toEqual([]);
        expect(readFileSync(s.model, "utf8")).toBe(before);

        const removed = apply(s.dir, "qubes-air.remove");
        expect(failed(removed)).toEqual([]);
        expect(normal(readModel(s.model))).toEqual(normal(startModel("4.3")));
        expect(existsSync(join(s.policyDir, "40-qubes-air.policy"))).toBe(false);
        const again = apply(s.dir, "qubes-air.remove");
        expect(failed(again)).toEqual([]);
        expect(changed(again)).toEqual([]);
      },
      4 * RUN_MS,
    );

    test(
      "remove takes back only the qubes create made: a relay and a RemoteVM that were there stay",
      () => {
        const s = setup({ id: "dom0", pillar: "example" });
        const env = { ...process.env, PATH: `${DOM0}:${process.env.PATH}`, QUBES_DOM0_MODEL: s.model };
        const run = (args: string[]) => {
          const r = spawnSync(args[0]!, args.slice(1), { env, encoding: "utf8" });
          expect({ args, status: r.status, err: r.stderr }).toEqual({ args, status: 0, err: "" });
        };
        // The user's own sys-remote-net and cloud-build, before the formula ever ran.
        run([
          "qvm-create",
          "--class",
          "AppVM",
          "--template",
          "debian-12-minimal",
          "--label",
          "red",
          "sys-remote-net",
        ]);
        run(["qvm-create", "--class", "RemoteVM", "--label", "gray", "cloud-build"]);
        run(["qvm-prefs", "cloud-build", "relayvm", "sys-remote-net"]);
        const created = apply(s.dir, "qubes-air.create");
        expect(failed(created)).toEqual([]);
        const made = readModel(s.model);
        expect(made.qubes["sys-remote"]!.tags).toContain(CREATED);
        expect(made.qubes["pi-gpg"]!.tags).toContain(CREATED);
        expect(made.qubes["sys-remote-net"]!.tags).not.toContain(CREATED);
        expect(made.qubes["cloud-build"]!.tags).not.toContain(CREATED);
        const removed = apply(s.dir, "qubes-air.remove");
        expect(failed(removed)).toEqual([]);
        const left = readModel(s.model);
        expect(Object.keys(left.qubes).sort()).toEqual(
          [...Object.keys(startModel("4.3").qubes), "cloud-build", "sys-remote-net"].sort(),
        );
        // Create set the pillar's prefs on it (the pillar drives); remove leaves the qube itself.
        expect(left.qubes["sys-remote-net"]!.prefs.label).toBe("orange");
        // A second remove changes nothing and still leaves them.
        expect(changed(apply(s.dir, "qubes-air.remove"))).toEqual([]);
        expect(Object.keys(readModel(s.model).qubes)).toContain("sys-remote-net");
      },
      3 * RUN_MS,
    );

    test(
      "empty pillar: create fails, naming the missing pillar keys, and touches nothing",
      () => {
        const s = setup({ id: "dom0", pillar: "empty" });
        const run = apply(s.dir, "qubes-air.create");
        expect(run.code).not.toBe(0);
        const why = failed(run).join("\n");
        expect(why).toContain("qubes-air:relays is missing");
        expect(why).toContain("qubes-air:remotes is missing");
        expect(run.states.every((s) => !s.result)).toBe(true);
        expect(normal(readModel(s.model))).toEqual(normal(startModel("4.3")));
        expect(existsSync(join(s.policyDir, "40-qubes-air.policy"))).toBe(false);
      },
      RUN_MS,
    );

    test(
      "a policy file name qrexec would not read fails before anything is created",
      () => {
        const s = setup({ id: "dom0", pillar: "example", overrides: { policy_file: "40-Qubes-Air.policy" } });
        const run = apply(s.dir, "qubes-air.create");
        expect(run.code).not.toBe(0);
        expect(failed(run).join("\n")).toContain(
          "qubes-air:policy_file: 40-Qubes-Air.policy is not a name qrexec reads",
        );
        expect(normal(readModel(s.model))).toEqual(normal(startModel("4.3")));
      },
      RUN_MS,
    );

    test(
      "the top file sends create to dom0, install to the relays' template, configure to each relay",
      () => {
        const s = setup({ id: "dom0", pillar: "example" });
        const r = salt(s.dir, ["slsutil.renderer", "salt://qubes-air.top", "default_renderer=jinja|yaml"]);
        expect(r.code).toBe(0);
        expect((JSON.parse(r.stdout) as { local: unknown }).local).toEqual({
          base: {
            dom0: [{ match: "nodegroup" }, "qubes-air.create"],
            "debian-12-minimal": ["qubes-air.install"],
            "sys-remote": ["qubes-air.configure"],
            "sys-remote-net": ["qubes-air.configure"],
          },
        });
      },
      RUN_MS,
    );

    test(
      "Qubes 4.2: no RemoteVMs, USB assigned by port, the policy names qubesair.Call+DEVICE and parses",
      () => {
        const s = setup({
          id: "dom0",
          pillar: "example",
          overrides: { qubes_version: "4.2" },
          version: "4.2",
        });
        const p = pillar(s.dir);
        const run = apply(s.dir, "qubes-air.create");
        expect(failed(run)).toEqual([]);
        expect(normal(readModel(s.model))).toEqual(normal(expectedModel(p, "4.2")));
        const policy = policyOf(s.policyDir, "40-qubes-air.policy");
        expect(policy.rules.some((r) => r.service === "qubesair.Call" && r.argument === "+pi-gpg")).toBe(
          true,
        );
      },
      RUN_MS,
    );

    test(
      "a step dom0 refuses fails its state: a RemoteVM whose relay names no qube",
      () => {
        const s = setup({
          id: "dom0",
          pillar: "example",
          overrides: { remotes: { "cloud-build": { relay: "sys-nowhere" } } },
        });
        const run = apply(s.dir, "qubes-air.create");
        expect(run.code).not.toBe(0);
        expect(failed(run).some((f) => f.startsWith("qubes-air-remote-cloud-build-pref-relayvm"))).toBe(true);
        expect(readModel(s.model).qubes["cloud-build"]?.prefs.relayvm).toBeUndefined();
      },
      RUN_MS,
    );

    test(
      "template and sys-remote states in a throwaway root: packages, daemon settings, a registry the daemon reads; twice = no changes",
      () => {
        const s = setup({ id: "sys-remote", pillar: "example" });
        const target = join(s.dir, "target");
        writeFileSync(
          join(s.dir, "pillar/overrides.sls"),
          `${JSON.stringify({
            "qubes-air": {
              sys_remote: {
                state_dir: join(target, "rw/usrlocal/lib/qubes-air"),
                env_file: join(target, "usr/local/etc/qubes-air/daemon.env"),
                settings: { QUBES_AIR_SOCKET: "/run/qubes-air/daemon.sock" },
              },
              remotes: {
                "pi-gpg": {
                  registry: {
                    zone: "usb",
                    transport: { serial: { byId: "usb-qubes-air_pi-gpg_E6614103-if00" } },
                    usb_serial: "E6614103",
                    agent_key: `qa-pub:${"5a".repeat(32)}`,
                  },
                },
              },
            },
          })}\n`,
        );
        for (const sls of ["qubes-air.install", "qubes-air.configure"]) {
          const first = apply(s.dir, sls);
          expect(failed(first)).toEqual([]);
          expect(changed(first).length).toBeGreaterThan(0);
          const second = apply(s.dir, sls);
          expect(failed(second)).toEqual([]);
          expect(changed(second)).toEqual([]);
        }
        expect(Object.keys(JSON.parse(readFileSync(join(target, "pkgs.json"), "utf8"))).sort()).toEqual([
          "qubes-air-sys-remote",
          "qubes-usb-proxy",
        ]);
        const stateDir = join(target, "rw/usrlocal/lib/qubes-air");
        expect(statSync(stateDir).mode & 0o777).toBe(0o700);
        const registryPath = join(stateDir, "registry.json");
        expect(statSync(registryPath).mode & 0o777).toBe(0o600);
        const registry = parseRegistry(readFileSync(registryPath, "utf8"), registryPath);
        // Only this relay's remotes: cloud-build goes through sys-remote-net.
        expect(registry.remotes.map((r) => r.name)).toEqual(["pi-gpg"]);
        const env = readFileSync(join(target, "usr/local/etc/qubes-air/daemon.env"), "utf8");
        expect(env).toContain(`QUBES_AIR_STATE=${stateDir}\n`);
        expect(env).toContain("QUBES_AIR_SOCKET=/run/qubes-air/daemon.sock\n");
      },
      4 * RUN_MS,
    );
  },
);
