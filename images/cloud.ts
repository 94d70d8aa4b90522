/**
 * `qubes-air image cloud --name NAME [--port P] [--out DIR]`: cloud-init user-data for a cloud VM
 * that installs the amd64 agent package and runs it on TCP, plus OpenTofu/Terraform modules
 * (DIR/tofu/PROVIDER/, images/tofu-modules.ts) that hand exactly that file to a VM behind a
 * firewall admitting only sys-remote (--sys-remote), and the one-time pairing token and
 * `qubes-air pair` command.
 * Clouds cap user-data (AWS 16 KiB, Hetzner 32 KiB), so the package is normally downloaded from
 * --agent-url and checked against its sha256; --embed-agent puts it inside (tens of MB: for
 * NoCloud seeds, libvirt, Proxmox).
 * Must never: write the token where others can read it (user-data is 0600), overwrite files, or
 * write a module whose firewall admits more than sys-remote (parseSysRemoteCidr refuses it).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../agent/config.ts";
import { isQubeName } from "../core/qrexec/names.ts";
import { findAgentPackage } from "./agent-package.ts";
import { IMAGE_LABELS } from "./build-options.ts";
import { type AgentSource, cloudAgentConfig, cloudUserData } from "./cloud-files.ts";
import { formatBytes, ImageError, type ImageIO, requireTools, usageError } from "./common.ts";
import { PATHS } from "./device-files.ts";
import { parseSysRemoteCidr } from "./sys-remote-cidr.ts";
import { TOFU_DIR, TOFU_PROVIDERS, tofuModules } from "./tofu-modules.ts";

export const CLOUD_HELP = `Usage: qubes-air image cloud --name NAME (--agent-url URL | --embed-agent) [options]

Writes DIR/user-data (cloud-init: installs the agent package qubes-air-agent_V_amd64.deb with
the VM's config listening on TCP and a one-time pairing token, and starts it) and OpenTofu/
Terraform modules DIR/tofu/{proxmox,aws,google,hcloud}/ that start a VM with exactly that
user-data behind a firewall admitting only sys-remote to the agent's port (no SSH), and prints
the token and the "qubes-air pair" command.

Options:
  --name NAME          the VM's qube name (its RemoteVM in dom0)
  --port P             the agent's TCP port (default 7441)
  --out DIR            where to write (default ./NAME-cloud; existing files are kept unless --force)
  --agent-url URL      the VM downloads the agent package from here (upload
                       dist/pkg/qubes-air-agent_V_amd64.deb from "bun run package")
  --agent-sha256 HEX   its sha256 (default: that of --agent or the package in dist/pkg/)
  --embed-agent        put the package into user-data (large: for NoCloud/libvirt, not public clouds)
  --agent FILE         the local agent package (default: found in dist/pkg/)
  --sys-remote ADDR    sys-remote's public IPv4 address (or a CIDR, at most a /16): the only
                       source the modules' firewalls admit (written to terraform.tfvars; without
                       it, tofu asks for sys_remote_cidr). 0.0.0.0/0 is refused.
  --force              replace existing files in DIR
  --address HOST       the VM's address, when known (a reserved IP): run in sys-remote, the
                       daemon then pairs with the VM by itself once it answers (enrolment)
  --label LABEL        the RemoteVM's label when sys-remote creates it (default gray)
  --no-enrol           do not record a pending enrolment in sys-remote
  --enrol-hours N      the enrolment expires after N hours (default 168, at most 2160)
  -h, --help           this text

Examples:
  qubes-air image cloud --name build1 --sys-remote 203.0.113.7 \\
    --agent-url https://example.org/qubes-air-agent_1.0_amd64.deb
  qubes-air image cloud --name build1 --embed-agent --out seed/`;

export async function imageCloudCommand(argv: readonly string[], io: ImageIO): Promise<number> {
  try {
    return await cloud(argv, io);
  } catch (e) {
    if (e instanceof ImageError) {
      io.err(
        `qubes-air image cloud: ${e.message}\n${e.exitCode === 2 ? "Run: qubes-air image cloud --help\n" : ""}`,
      );
      return e.exitCode;
    }
    io.err(`qubes-air image cloud: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

function localPackage(given: string | undefined, env: Readonly<Record<string, string | undefined>>) {
  return findAgentPackage("amd64", given, requireTools(["dpkg-deb"], env)["dpkg-deb"]!, env);
}

async function cloud(argv: readonly string[], io: ImageIO): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        name: { type: "string" },
        port: { type: "string" },
        out: { type: "string" },
        "agent-url": { type: "string" },
        "agent-sha256": { type: "string" },
        "embed-agent": { type: "boolean" },
        agent: { type: "string" },
        "sys-remote": { type: "string" },
        force: { type: "boolean" },
        address: { type: "string" },
        label: { type: "string" },
        "no-enrol": { type: "boolean" },
        "enrol-hours": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw usageError((e as Error).message.split("\n")[0] ?? "bad arguments");
  }
  if (v.help) {
    io.out(`${CLOUD_HELP}\n`);
    return 0;
  }
  const name = typeof v.name === "string" ? v.name : "";
  if (!isQubeName(name))
    throw usageError("--name NAME is required: a qube name (a letter, then letters, digits, _ . -)");
  const port = v.port === undefined ? 7441 : Number(v.port);
  if (!/^\d{1,5}$/.test(String(v.port ?? "7441")) || port < 1 || port > 65535)
    throw usageError("--port must be 1-65535");
  const sysRemote = typeof v["sys-remote"] === "string" ? parseSysRemoteCidr(v["sys-remote"]) : undefined;
  const url = v["agent-url"] as string | undefined;
  if ((url === undefined) === (v["embed-agent"] !== true)) {
    throw usageError(
      "give --agent-url URL (the VM downloads the agent package; clouds cap user-data at 16-64 KiB) or --embed-agent",
    );
  }
  const enrol = enrolOptions(v, port);
  const env = io.env ?? process.env;
  let agent: AgentSource;
  let agentNote: string;
  if (url !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw usageError(`--agent-url is not a URL: ${url}`);
    }
    if ((parsed.protocol !== "https:" && parsed.protocol !== "http:") || /['\s\\]/.test(url)) {
      throw usageError("--agent-url must be an http(s) URL without quotes or spaces");
    }
    let sha = (v["agent-sha256"] as string | undefined)?.toLowerCase();
    if (sha === undefined) sha = localPackage(v.agent as string | undefined, env).sha256;
    if (!/^[0-9a-f]{64}$/.test(sha)) throw usageError("--agent-sha256 must be 64 hex digits");
    agent = { kind: "url", url, sha256: sha };
    agentNote = `downloaded from ${url} and checked against sha256 ${sha.slice(0, 16)}…`;
  } else {
    const found = localPackage(v.agent as string | undefined, env);
    agent = { kind: "embed", base64: readFileSync(found.path).toString("base64"), sha256: found.sha256 };
    agentNote = `${found.name} embedded (${formatBytes(found.size)}): too large for public clouds' user-data`;
  }
  const token = randomBytes(32).toString("hex");
  parseConfig(cloudAgentConfig({ name, port }), PATHS.config, { HOME: "/root" });
  const userData = cloudUserData({ name, port, token, agent });
  const dir = typeof v.out === "string" ? v.out : `${name}-cloud`;
  mkdirSync(dir, { recursive: true });
  const files: [string, string, number][] = [["user-data", userData, 0o600]];
  for (const [f, text] of tofuModules({ name, port, sysRemote })) files.push([f, text, 0o644]);
  for (const [f] of files) {
    if (existsSync(join(dir, f)) && v.force !== true) {
      throw new ImageError(`${join(dir, f)} exists: choose another --out, or add --force to replace it`);
    }
  }
  // A replaced set of modules must not keep an older run's sys-remote address.
  for (const p of TOFU_PROVIDERS) rmSync(join(dir, TOFU_DIR, p, "terraform.tfvars"), { force: true });
  for (const [f, text, mode] of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    const tmp = join(dirname(join(dir, f)), `.${basename(f)}.tmp-${process.pid}`);
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, join(dir, f));
  }
  io.out(
    [
      `Wrote ${join(dir, "user-data")} (${formatBytes(Buffer.byteLength(userData))}, mode 0600)`,
      `  agent      ${agentNote}`,
      `  listens    0.0.0.0:${port} (TCP); open it only to sys-remote`,
      `  modules    ${join(dir, TOFU_DIR)}/{${TOFU_PROVIDERS.join(",")}}/ (OpenTofu/Terraform; README.md in each)`,
      sysRemote === undefined
        ? "  firewall   admits only var.sys_remote_cidr (give --sys-remote ADDR, or -var sys_remote_cidr=ADDR/32 to tofu)"
        : `  firewall   admits only ${sysRemote} to port ${port} (terraform.tfvars); no SSH`,
      "",
      "One-time pairing token (secret until the VM is paired):",
      `  ${token}`,
      "",
      "When the VM is up, pair it from sys-remote:",
      `  qubes-air pair ${name} --tcp VM-ADDRESS:${port} --zone cloud --token ${token}`,
      "",
    ].join("\n"),
  );
  if (enrol && io.enrol) {
    const { label, tcp, ttlSeconds } = enrol;
    io.out(`${await io.enrol({ name, zone: "cloud", label, token, identity: { tcp }, ttlSeconds })}\n`);
  } else if (io.enrol && v["no-enrol"] !== true) {
    io.out("Not enrolled: give --address (the VM's address) to have sys-remote pair by itself\n");
  }
  return 0;
}

function enrolOptions(
  v: Record<string, string | boolean | undefined>,
  port: number,
): { label: string; tcp: string; ttlSeconds: number } | null {
  const label = typeof v.label === "string" ? v.label : "gray";
  if (!IMAGE_LABELS.includes(label)) throw usageError(`--label must be one of ${IMAGE_LABELS.join(", ")}`);
  const hours = typeof v["enrol-hours"] === "string" ? v["enrol-hours"] : "168";
  if (!/^\d{1,4}$/.test(hours) || Number(hours) < 1 || Number(hours) > 2160)
    throw usageError("--enrol-hours must be 1 to 2160");
  if (typeof v.address !== "string" || v["no-enrol"] === true) return null;
  const host = v.address;
  const ok = /^[0-9A-Za-z.-]{1,253}$/.test(host) || /^[0-9A-Fa-f:.]+$/.test(host);
  if (!ok) throw usageError("--address must be a host name or an IP address");
  return {
    label,
    tcp: host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`,
    ttlSeconds: Number(hours) * 3600,
  };
}
