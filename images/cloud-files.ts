/**
 * The files of `qubes-air image cloud` (pure texts): cloud-init user-data that installs the
 * amd64 agent package (qubes-air-agent_V_amd64.deb, the same package as everywhere else:
 * downloaded from a URL the user hosts and checked against its pinned sha256, or embedded base64
 * for NoCloud seeds), the VM's own config listening on TCP and a one-time pairing token (0600),
 * written before the package is installed (kept with --force-confold: first-boot-install.ts).
 * The OpenTofu modules that hand this user-data to a VM are images/tofu-modules.ts.
 * Why a URL and not the package inside: clouds cap user-data (AWS 16 KiB, Hetzner 32 KiB) and the
 * package is tens of MB; the sha256 in the user-data pins exactly the bytes the user built.
 */

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
