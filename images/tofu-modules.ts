/**
 * The OpenTofu/Terraform modules of `qubes-air image cloud`: DIR/tofu/PROVIDER/{main.tf,
 * variables.tf, outputs.tf, README.md} for Proxmox VE (bpg/proxmox), AWS, Google Cloud and
 * Hetzner Cloud, rendered from the templates in images/tofu/ (common/ is shared by every
 * provider: the locals that read ../../user-data, the validated sys_remote_cidr variable, the
 * outputs and the README's frame). Pure texts; images/cloud.ts writes them.
 * Must never: write a second copy of the user-data (each module reads the file the command wrote
 * with file()), give sys_remote_cidr a default, or admit anything inbound but sys-remote to the
 * agent's port. Templates are bundled with the CLI (text imports), so a compiled binary has them.
 */
import { hostnameFrom } from "./build-options.ts";
import { FIRST_MULTICAST_OCTET, MIN_PREFIX, REFUSED_FIRST_OCTETS } from "./sys-remote-cidr.ts";
import awsMain from "./tofu/aws/main.tf" with { type: "text" };
import awsReadme from "./tofu/aws/README.md" with { type: "text" };
import awsVariables from "./tofu/aws/variables.tf" with { type: "text" };
import mainHead from "./tofu/common/main-head.tf" with { type: "text" };
import outputs from "./tofu/common/outputs.tf" with { type: "text" };
import readmeFrame from "./tofu/common/README.md" with { type: "text" };
import tfvars from "./tofu/common/terraform.tfvars" with { type: "text" };
import sysRemoteVariable from "./tofu/common/variables.tf" with { type: "text" };
import googleMain from "./tofu/google/main.tf" with { type: "text" };
import googleReadme from "./tofu/google/README.md" with { type: "text" };
import googleVariables from "./tofu/google/variables.tf" with { type: "text" };
import hcloudMain from "./tofu/hcloud/main.tf" with { type: "text" };
import hcloudReadme from "./tofu/hcloud/README.md" with { type: "text" };
import hcloudVariables from "./tofu/hcloud/variables.tf" with { type: "text" };
import proxmoxMain from "./tofu/proxmox/main.tf" with { type: "text" };
import proxmoxReadme from "./tofu/proxmox/README.md" with { type: "text" };
import proxmoxVariables from "./tofu/proxmox/variables.tf" with { type: "text" };

export const TOFU_PROVIDERS = ["proxmox", "aws", "google", "hcloud"] as const;
export type TofuProvider = (typeof TOFU_PROVIDERS)[number];

interface ProviderTemplates {
  readonly title: string;
  /** required_providers: the registry source, and a version constraint within one major release. */
  readonly source: string;
  readonly version: string;
  readonly main: string;
  readonly variables: string;
  readonly readme: string;
  /** Variables without a default besides sys_remote_cidr, for the README's apply line. */
  readonly required: string;
}

const PROVIDERS: Readonly<Record<TofuProvider, ProviderTemplates>> = {
  proxmox: {
    title: "Proxmox VE",
    // 0.x: each minor release may change attributes; ~> 0.111 still admits later 0.x fixes.
    source: "bpg/proxmox",
    version: "~> 0.111",
    main: proxmoxMain,
    variables: proxmoxVariables,
    readme: proxmoxReadme,
    required: " -var node=pve",
  },
  aws: {
    title: "AWS EC2",
    source: "hashicorp/aws",
    version: "~> 6.0",
    main: awsMain,
    variables: awsVariables,
    readme: awsReadme,
    required: "",
  },
  google: {
    title: "Google Cloud",
    source: "hashicorp/google",
    version: "~> 7.0",
    main: googleMain,
    variables: googleVariables,
    readme: googleReadme,
    required: " -var project=PROJECT-ID",
  },
  hcloud: {
    title: "Hetzner Cloud",
    source: "hetznercloud/hcloud",
    version: "~> 1.45",
    main: hcloudMain,
    variables: hcloudVariables,
    readme: hcloudReadme,
    required: "",
  },
};

/** Where a module lives under DIR, and where its main.tf finds the user-data (../../user-data). */
export const TOFU_DIR = "tofu";

export interface TofuSetup {
  readonly name: string;
  readonly port: number;
  /** The canonical CIDR from parseSysRemoteCidr, or undefined: tofu then asks for it. */
  readonly sysRemote: string | undefined;
}

/** The regex (RE2 and JavaScript alike) of one IPv4 CIDR no wider than a /MIN_PREFIX. */
export function cidrRegex(): string {
  const octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  const prefixes: number[] = [];
  for (let p = MIN_PREFIX; p <= 32; p++) prefixes.push(p);
  return `^${octet}([.]${octet}){3}/(${prefixes.join("|")})$`;
}

/**
 * `{{key}}` in `template` replaced by `values[key]`. A key the values lack, or a value that could
 * end an HCL string or start an interpolation, is a bug here (names and ports are parsed before).
 */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>, hcl: boolean) {
  return template.replace(/\{\{([a-z_]+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`bug: template key ${key} has no value`);
    if (hcl && /["\\\n]|[$%]\{/.test(value)) throw new Error(`bug: ${key} is not safe inside HCL: ${value}`);
    return value;
  });
}

/** The files of one provider's module, relative to DIR. */
export function tofuModule(provider: TofuProvider, s: TofuSetup): Map<string, string> {
  const p = PROVIDERS[provider];
  const values: Record<string, string> = {
    name: s.name,
    hostname: hostnameFrom(s.name),
    port: String(s.port),
    title: p.title,
    provider,
    provider_source: p.source,
    provider_version: p.version,
    min_prefix: String(MIN_PREFIX),
    cidr_regex: cidrRegex(),
    refused_octets: REFUSED_FIRST_OCTETS.join(", "),
    multicast_octet: String(FIRST_MULTICAST_OCTET),
  };
  const tf = (t: string) => renderTemplate(t, values, true);
  const dir = `${TOFU_DIR}/${provider}`;
  const files = new Map<string, string>([
    [`${dir}/main.tf`, tf(mainHead) + tf(p.main)],
    [`${dir}/variables.tf`, tf(sysRemoteVariable) + tf(p.variables)],
    [`${dir}/outputs.tf`, tf(outputs)],
  ]);
  if (s.sysRemote !== undefined) {
    files.set(`${dir}/terraform.tfvars`, renderTemplate(tfvars, { sys_remote_cidr: s.sysRemote }, true));
  }
  const readmeValues = {
    ...values,
    apply_args: `${p.required}${s.sysRemote === undefined ? " -var sys_remote_cidr=203.0.113.7/32" : ""}`,
    tfvars_note:
      s.sysRemote === undefined
        ? "give it with `-var` (tofu asks for it otherwise), or write it into `terraform.tfvars`."
        : `\`terraform.tfvars\` sets it to \`${s.sysRemote}\` (from \`--sys-remote\`).`,
    provider_readme: renderTemplate(p.readme, values, false).trimEnd(),
  };
  files.set(`${dir}/README.md`, renderTemplate(readmeFrame, readmeValues, false));
  return files;
}

/** Every provider's module, relative to DIR. */
export function tofuModules(s: TofuSetup): Map<string, string> {
  const all = new Map<string, string>();
  for (const provider of TOFU_PROVIDERS) for (const [f, text] of tofuModule(provider, s)) all.set(f, text);
  return all;
}
