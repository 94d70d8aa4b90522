/**
 * The files of `qubes-air image cloud` (pure texts): cloud-init user-data that installs the
 * amd64 agent package (qubes-air-agent_V_amd64.deb, the same package as everywhere else:
 * downloaded from a URL the user hosts and checked against its pinned sha256, or embedded base64
 * for NoCloud seeds), the VM's own config listening on TCP and a one-time pairing token (0600),
 * written before the package is installed (kept with --force-confold: first-boot-install.ts);
 * and an example Terraform file that passes the user-data to a VM (Hetzner Cloud or AWS).
 * Why a URL and not the package inside: clouds cap user-data (AWS 16 KiB, Hetzner 32 KiB) and the
 * package is tens of MB; the sha256 in the user-data pins exactly the bytes the user built.
 */

import { hostnameFrom } from "./build-options.ts";
import { PATHS } from "./device-files.ts";
import { INSTALL, installScript } from "./first-boot-install.ts";
import { Literal, toYaml, type YamlValue } from "./yaml.ts";

/** The package's name inside the VM (the URL's own name does not matter to dpkg). */
export const CLOUD_DEB = "qubes-air-agent_amd64.deb";
export const FETCH_SCRIPT = `${INSTALL.dir}/fetch.sh`;

export type AgentSource =
  | { readonly kind: "url"; readonly url: string; readonly sha256: string }
  | { readonly kind: "embed"; readonly base64: string; readonly sha256: string };

export interface CloudSetup {
  readonly name: string;
  readonly port: number;
  readonly token: string;
  readonly agent: AgentSource;
}

export function cloudAgentConfig(s: Pick<CloudSetup, "name" | "port">): Record<string, unknown> {
  return {
    name: s.name,
    listen: { tcp: `0.0.0.0:${s.port}` },
    stateDir: PATHS.stateDir,
    policyDir: PATHS.policyDir,
  };
}

/** Downloads the package to a temporary name, checks its sha256, then moves it into place. */
export function fetchScript(url: string, sha256: string): string {
  const https = url.startsWith("https:");
  return `#!/bin/sh
# qubes-air: fetch the agent package, check its sha256 (written by qubes-air image cloud)
set -eu
url='${url}'
sum='${sha256}'
dest=${INSTALL.dir}/${CLOUD_DEB}
tmp="$dest.download"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 5${https ? " --proto '=https'" : ""} -o "$tmp" "$url"
else
  wget -q -O "$tmp" "$url"
fi
if ! echo "$sum  $tmp" | sha256sum -c - >/dev/null 2>&1; then
  rm -f "$tmp"
  echo "qubes-air: the agent package downloaded from $url has the wrong sha256" >&2
  exit 1
fi
mv "$tmp" "$dest"
`;
}

type WriteFile = { [key: string]: YamlValue };

function wf(path: string, permissions: string, content: string | Literal, encoding?: string): WriteFile {
  return {
    path,
    owner: "root:root",
    permissions,
    ...(encoding ? { encoding } : {}),
    content: typeof content === "string" ? new Literal(content) : content,
  };
}

export function cloudUserData(s: CloudSetup): string {
  const files: WriteFile[] = [
    wf(PATHS.config, "0644", `${JSON.stringify(cloudAgentConfig(s), null, 2)}\n`),
    wf(PATHS.token, "0600", `${s.token}\n`),
    wf(INSTALL.script, "0755", installScript(CLOUD_DEB)),
  ];
  // cloud-init makes parent directories 0755: the state dir is made 0700 before anything else.
  const runcmd: string[][] = [["chmod", "0700", PATHS.stateDir, INSTALL.dir]];
  if (s.agent.kind === "url") {
    files.push(wf(FETCH_SCRIPT, "0755", fetchScript(s.agent.url, s.agent.sha256)));
    runcmd.push([FETCH_SCRIPT]);
  } else {
    files.push({
      path: `${INSTALL.dir}/${CLOUD_DEB}`,
      owner: "root:root",
      permissions: "0644",
      encoding: "b64",
      content: s.agent.base64,
    });
  }
  runcmd.push([INSTALL.script]);
  return toYaml({ write_files: files, runcmd }, [
    "#cloud-config",
    `# qubes-air agent "${s.name}" (written by qubes-air image cloud). It holds a one-time pairing`,
    "# token: keep this file private until the VM is paired.",
  ]);
}

const ident = (name: string) => name.replace(/[^A-Za-z0-9_-]/g, "_");

export function terraformFile(provider: "hcloud" | "aws", name: string, port: number): string {
  const id = ident(name);
  const host = hostnameFrom(name);
  const cidr = `variable "sys_remote_cidr" {
  description = "The public address sys-remote connects from, as a CIDR (e.g. 203.0.113.7/32)"
  type        = string
}`;
  const pair = (addr: string) => `output "pair_command" {
  value = "qubes-air pair ${name} --tcp \${${addr}}:${port} --zone cloud --token <the token qubes-air image cloud printed>"
}`;
  if (provider === "hcloud") {
    return `# Example: a Hetzner Cloud VM running the qubes-air agent "${name}" (written by qubes-air image cloud).
# export HCLOUD_TOKEN=...; terraform init; terraform apply -var sys_remote_cidr=203.0.113.7/32
terraform {
  required_providers {
    hcloud = {
      source  = "hetznercloud/hcloud"
      version = ">= 1.45"
    }
  }
}

${cidr}

resource "hcloud_firewall" "${id}" {
  name = "${host}-qubes-air"
  rule {
    direction  = "in"
    protocol   = "tcp"
    port       = "${port}"
    source_ips = [var.sys_remote_cidr]
  }
}

resource "hcloud_server" "${id}" {
  name         = "${host}"
  image        = "debian-12"
  server_type  = "cx22"
  location     = "nbg1"
  user_data    = file("\${path.module}/user-data")
  firewall_ids = [hcloud_firewall.${id}.id]
}

output "address" {
  value = hcloud_server.${id}.ipv4_address
}

${pair(`hcloud_server.${id}.ipv4_address`)}
`;
  }
  return `# Example: an AWS EC2 VM running the qubes-air agent "${name}" (written by qubes-air image cloud).
# terraform init; terraform apply -var sys_remote_cidr=203.0.113.7/32
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "region" {
  type    = string
  default = "eu-central-1"
}

${cidr}

provider "aws" {
  region = var.region
}

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
}

resource "aws_security_group" "${id}" {
  name = "${host}-qubes-air"
  ingress {
    from_port   = ${port}
    to_port     = ${port}
    protocol    = "tcp"
    cidr_blocks = [var.sys_remote_cidr]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_instance" "${id}" {
  ami                         = data.aws_ami.debian.id
  instance_type               = "t3.small"
  user_data                   = file("\${path.module}/user-data")
  user_data_replace_on_change = true
  vpc_security_group_ids      = [aws_security_group.${id}.id]
  tags = {
    Name = "${host}"
  }
}

output "address" {
  value = aws_instance.${id}.public_ip
}

${pair(`aws_instance.${id}.public_ip`)}
`;
}
