/**
 * The OpenTofu/Terraform modules `qubes-air image cloud` writes (DIR/tofu/PROVIDER/), checked
 * with HashiCorp's own HCL parser (the Go hcl library as WASM, npm @cdktf/hcl2json: OpenTofu and
 * its providers cannot be fetched here): every file parses; each module pins its provider; its VM
 * gets the user-data through file("${path.module}/../../user-data"), which is the very file the
 * command wrote (no copy: the token is in no module file); the firewall admits sys-remote's CIDR
 * to the agent's port and nothing else inbound (no SSH), behind a DROP default where the provider
 * has one; sys_remote_cidr has no default and a validation block; the outputs give the address
 * and the pair command. The attack: an open, wide, malformed or missing --sys-remote is refused
 * with exit 2 (EXIT.USAGE) and nothing is written.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { MIN_PREFIX } from "../../images/sys-remote-cidr.ts";
import { cidrRegex, TOFU_PROVIDERS, type TofuProvider } from "../../images/tofu-modules.ts";
import { openDir, removeDirs, runImageCli } from "../fixtures/images/helpers.ts";
import { lacking } from "../helpers/requires.ts";

// biome-ignore lint/suspicious/noExplicitAny: hcl2json's JSON, shaped by the module under test
type Hcl = Record<string, any>;

/** An HCL expression as hcl2json gives it: "${expr}". */
const ref = (expr: string) => `$\{${expr}}`;
type Parse = (file: string, text: string) => Promise<Hcl>;

/**
 * Imported by a name tsc does not resolve: the package's typings pull in the DOM library
 * (`reference lib="dom"`), which changes Bun's stream types for the whole program.
 */
const HCL2JSON: string = "@cdktf/hcl2json";
let parse: Parse | null = null;
try {
  parse = (await import(HCL2JSON)).parse as Parse;
} catch {
  parse = null;
}

const dir = openDir("qa-image-cloud-tofu-");
afterAll(removeDirs);

const SHA = "ab".repeat(32);
const PORT = 7443;
const CIDR = "198.51.100.0/24";

const REQUIRED: Record<TofuProvider, { source: string; version: RegExp }> = {
  proxmox: { source: "bpg/proxmox", version: /^~> 0\.\d+$/ },
  aws: { source: "hashicorp/aws", version: /^~> \d+\.\d+$/ },
  google: { source: "hashicorp/google", version: /^~> \d+\.\d+$/ },
  hcloud: { source: "hetznercloud/hcloud", version: /^~> 1\.\d+$/ },
};

/** Every resource type each module makes: a new kind of resource here is a new review. */
const RESOURCES: Record<TofuProvider, string[]> = {
  proxmox: [
    "proxmox_virtual_environment_download_file",
    "proxmox_virtual_environment_file",
    "proxmox_virtual_environment_firewall_options",
    "proxmox_virtual_environment_firewall_rules",
    "proxmox_virtual_environment_vm",
  ],
  aws: ["aws_instance", "aws_security_group"],
  google: [
    "google_compute_firewall",
    "google_compute_instance",
    "google_compute_network",
    "google_compute_subnetwork",
  ],
  hcloud: ["hcloud_firewall", "hcloud_server"],
};

const VAR = ref("var.sys_remote_cidr");
const USER_DATA = ref("local.user_data");

function cloud(name: string, extra: string[]) {
  const out = join(dir, name);
  const r = runImageCli(
    ["cloud", "--name", name, "--port", String(PORT), "--agent-url", "https://example.org/a.deb"]
      .concat(["--agent-sha256", SHA, "--out", out])
      .concat(extra),
    dir,
  );
  return { out, ...r };
}

async function parsed(path: string): Promise<Hcl> {
  return await parse!(path, readFileSync(path, "utf8"));
}

/** The one block of `type` "label" (hcl2json gives each block as a list). */
function one(hcl: Hcl, kind: string, type: string, label = "agent"): Hcl {
  const blocks = hcl[kind]?.[type]?.[label];
  expect(blocks).toHaveLength(1);
  return blocks[0];
}

/** The module's merged locals (hcl2json gives one entry per locals block). */
function locals(main: Hcl): Hcl {
  return Object.assign({}, ...(main.locals as Hcl[]));
}

describe.skipIf(lacking(parse ? null : "the npm package @cdktf/hcl2json (npm install)"))(
  "image cloud: OpenTofu modules (HashiCorp's HCL parser)",
  () => {
    test("the parser is real: broken HCL is refused with HCL's own diagnostics", async () => {
      await expect(parse!("bad.tf", 'resource "a" "b" {\n  x = "unterminated\n}\n')).rejects.toThrow(
        /Invalid multi-line string|Unterminated template string/,
      );
      await expect(parse!("bad.tf", 'variable "x" {\n  default = \n}\n')).rejects.toThrow(
        /Invalid expression/,
      );
    });

    test("--sys-remote: every module parses, pins its provider, reads the written user-data and admits only sys-remote", async () => {
      const { out, code, stdout, stderr } = cloud("build1", ["--sys-remote", CIDR, "--no-enrol"]);
      expect(stderr).toBe("");
      expect(code).toBe(EXIT.OK);
      expect(stdout).toContain(`firewall   admits only ${CIDR} to port ${PORT}`);
      const token = /pairing token[^\n]*\n {2}([0-9a-f]{64})\n/.exec(stdout)![1]!;
      const userData = join(out, "user-data");
      expect(readFileSync(userData, "utf8")).toContain(token);
      expect(readdirSync(join(out, "tofu")).sort()).toEqual([...TOFU_PROVIDERS].sort());
      for (const provider of TOFU_PROVIDERS) {
        const mod = join(out, "tofu", provider);
        expect({ provider, files: readdirSync(mod).sort() }).toEqual({
          provider,
          files: ["README.md", "main.tf", "outputs.tf", "terraform.tfvars", "variables.tf"],
        });
        for (const f of readdirSync(mod)) {
          // The token is in the user-data only: a module that copied it would be a second copy.
          expect({ f, copy: readFileSync(join(mod, f), "utf8").includes(token) }).toEqual({ f, copy: false });
          expect(statSync(join(mod, f)).mode & 0o777).toBe(0o644);
        }
        const main = await parsed(join(mod, "main.tf"));
        const variables = await parsed(join(mod, "variables.tf"));
        const outputs = await parsed(join(mod, "outputs.tf"));
        const tfvars = await parsed(join(mod, "terraform.tfvars"));

        // The provider, pinned.
        const [tf] = main.terraform as Hcl[];
        expect(tf!.required_version).toBe(">= 1.6.0");
        const req = (tf!.required_providers as Hcl[])[0]![provider];
        expect(req.source).toBe(REQUIRED[provider].source);
        expect(req.version).toMatch(REQUIRED[provider].version);
        expect(Object.keys(main.resource).sort()).toEqual(RESOURCES[provider]);

        // The user-data: the file the command wrote, by reference.
        const l = locals(main);
        expect(l.user_data).toBe(ref(`file("${ref("path.module")}/../../user-data")`));
        expect(resolve(mod, "../../user-data")).toBe(resolve(userData));
        expect(l.agent_port).toBe(PORT);
        expect(l.name).toBe("build1");

        // sys_remote_cidr: required, validated; set to --sys-remote by terraform.tfvars.
        const v = variables.variable.sys_remote_cidr[0];
        expect("default" in v).toBe(false);
        expect(v.nullable).toBe(false);
        expect(v.validation).toHaveLength(1);
        expect(v.validation[0].condition).toContain("var.sys_remote_cidr");
        // The regex tofu applies is the one the CLI's parser is tested against (sys-remote-cidr.test.ts).
        expect(v.validation[0].condition).toContain(`can(regex("${cidrRegex()}", var.sys_remote_cidr))`);
        expect(cidrRegex()).toContain(`/(${MIN_PREFIX}|`);
        expect(v.validation[0].error_message).toContain("0.0.0.0/0");
        expect(tfvars).toEqual({ sys_remote_cidr: CIDR });

        // The outputs: the address and the pair command.
        expect(outputs.output.address[0].value).toBe(ref("local.address"));
        expect(outputs.output.next[0].value).toBe(
          `qubes-air pair ${ref("local.name")} --tcp ${ref("local.address")}:${ref("local.agent_port")} --zone cloud --token TOKEN`,
        );
        expect(typeof l.address).toBe("string");

        checkProvider(provider, main);
        // Nothing in any module is open to the world but AWS's outbound rule.
        const text = readFileSync(join(mod, "main.tf"), "utf8");
        expect(text.split("0.0.0.0/0").length - 1).toBe(provider === "aws" ? 1 : 0);
        expect(text).not.toMatch(/\b22\b|ssh_keys|key_name/);
        const readme = readFileSync(join(mod, "README.md"), "utf8");
        expect(readme).toContain("**SSH is off**");
        expect(readme).toContain(`cd tofu/${provider}`);
        expect(readme).not.toContain("{{");
      }
    });

    test("without --sys-remote: no tfvars, so tofu has no source to admit until it is given (no default)", async () => {
      const { out, code, stdout } = cloud("build2", ["--no-enrol"]);
      expect(code).toBe(EXIT.OK);
      expect(stdout).toContain("admits only var.sys_remote_cidr (give --sys-remote ADDR");
      for (const provider of TOFU_PROVIDERS) {
        const mod = join(out, "tofu", provider);
        expect(existsSync(join(mod, "terraform.tfvars"))).toBe(false);
        const v = (await parsed(join(mod, "variables.tf"))).variable.sys_remote_cidr[0];
        expect("default" in v).toBe(false);
        expect(readFileSync(join(mod, "README.md"), "utf8")).toContain("-var sys_remote_cidr=203.0.113.7/32");
      }
      // --force replaces the modules; an older run's address does not survive in a tfvars.
      const first = cloud("build3", ["--sys-remote", "203.0.113.7", "--no-enrol"]);
      expect(first.code).toBe(EXIT.OK);
      expect(await parsed(join(first.out, "tofu/aws/terraform.tfvars"))).toEqual({
        sys_remote_cidr: "203.0.113.7/32",
      });
      const again = cloud("build3", ["--no-enrol"]);
      expect(again.code).toBe(EXIT.FAILURE);
      expect(again.stderr).toContain("exists: choose another --out, or add --force");
      const forced = cloud("build3", ["--no-enrol", "--force"]);
      expect(forced.code).toBe(EXIT.OK);
      for (const provider of TOFU_PROVIDERS)
        expect(existsSync(join(forced.out, "tofu", provider, "terraform.tfvars"))).toBe(false);
    });
  },
);

// The CLI's refusals need no parser: they run everywhere.
describe("image cloud --sys-remote", () => {
  test("an open, wide, malformed or missing --sys-remote is refused (exit 2, the fix in the message), nothing written", () => {
    const cases: [string[], RegExp][] = [
      [["--sys-remote", "0.0.0.0/0"], /--sys-remote 0\.0\.0\.0\/0 would admit 4294967296 addresses/],
      [["--sys-remote", "203.0.113.7/8"], /would admit 16777216 addresses .* give sys-remote's own address/],
      [["--sys-remote", "203.0.113.7/24"], /has host bits set: give 203\.0\.113\.0\/24/],
      [["--sys-remote", "203.0.113.7,0.0.0.0/0"], /must be sys-remote's public IPv4 address/],
      [["--sys-remote", "any"], /must be sys-remote's public IPv4 address/],
      [["--sys-remote", ""], /must be sys-remote's public IPv4 address/],
      [["--sys-remote"], /--sys-remote.*argument missing/],
    ];
    for (const [args, message] of cases) {
      const r = cloud("refused", args);
      expect({ args, code: r.code }).toEqual({ args, code: EXIT.USAGE });
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain("Run: qubes-air image cloud --help");
      expect(r.stdout).toBe("");
      expect(existsSync(r.out)).toBe(false);
    }
  });
});

/** The provider's firewall: one inbound rule, from var.sys_remote_cidr to the agent's port. */
function checkProvider(provider: TofuProvider, main: Hcl): void {
  const port = ref("local.agent_port");
  if (provider === "aws") {
    const sg = one(main, "resource", "aws_security_group");
    expect(sg.ingress).toEqual([
      {
        description: "sys-remote to the qubes-air agent",
        from_port: port,
        to_port: port,
        protocol: "tcp",
        cidr_blocks: [VAR],
      },
    ]);
    const vm = one(main, "resource", "aws_instance");
    expect(vm.user_data).toBe(USER_DATA);
    expect(vm.vpc_security_group_ids).toEqual([ref("aws_security_group.agent.id")]);
    expect(vm.metadata_options).toEqual([{ http_tokens: "required" }]);
    expect(vm.key_name).toBeUndefined();
  } else if (provider === "google") {
    const rules = main.resource.google_compute_firewall;
    expect(Object.keys(rules)).toEqual(["agent"]);
    const fw = one(main, "resource", "google_compute_firewall");
    expect(fw.direction).toBe("INGRESS");
    expect(fw.source_ranges).toEqual([VAR]);
    expect(fw.allow).toEqual([{ protocol: "tcp", ports: [ref("tostring(local.agent_port)")] }]);
    expect(fw.deny).toBeUndefined();
    // On a network of its own (the project's default network admits SSH from anywhere).
    expect(fw.network).toBe(ref("google_compute_network.agent.id"));
    expect(one(main, "resource", "google_compute_network").auto_create_subnetworks).toBe(false);
    const vm = one(main, "resource", "google_compute_instance");
    expect(vm.network_interface[0].subnetwork).toBe(ref("google_compute_subnetwork.agent.id"));
    expect(vm.tags).toEqual(fw.target_tags);
    expect(vm.metadata).toEqual({ "user-data": USER_DATA, "block-project-ssh-keys": "true" });
  } else if (provider === "proxmox") {
    const options = one(main, "resource", "proxmox_virtual_environment_firewall_options");
    expect(options).toMatchObject({ enabled: true, input_policy: "DROP", output_policy: "ACCEPT" });
    const rules = one(main, "resource", "proxmox_virtual_environment_firewall_rules");
    expect(rules.rule).toEqual([
      {
        type: "in",
        action: "ACCEPT",
        proto: "tcp",
        dport: ref("tostring(local.agent_port)"),
        source: VAR,
        comment: "sys-remote to the qubes-air agent",
      },
    ]);
    const vm = one(main, "resource", "proxmox_virtual_environment_vm");
    expect(vm.network_device).toEqual([{ bridge: ref("var.bridge"), firewall: true }]);
    expect(vm.initialization[0].user_data_file_id).toBe(ref("proxmox_virtual_environment_file.user_data.id"));
    const snippet = one(main, "resource", "proxmox_virtual_environment_file", "user_data");
    expect(snippet.content_type).toBe("snippets");
    expect(snippet.source_raw[0].data).toBe(USER_DATA);
  } else {
    const fw = one(main, "resource", "hcloud_firewall");
    expect(fw.rule).toEqual([
      {
        description: "sys-remote to the qubes-air agent",
        direction: "in",
        protocol: "tcp",
        port: ref("tostring(local.agent_port)"),
        source_ips: [VAR],
      },
    ]);
    const vm = one(main, "resource", "hcloud_server");
    expect(vm.user_data).toBe(USER_DATA);
    expect(vm.firewall_ids).toEqual([ref("hcloud_firewall.agent.id")]);
    expect(vm.ssh_keys).toBeUndefined();
  }
}
