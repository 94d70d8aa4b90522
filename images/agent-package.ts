/**
 * Finds the agent package an image or cloud VM installs: qubes-air-agent_VERSION_ARCH.deb, made
 * by `bun run package` (packaging/build.ts). Given with --agent, or looked up in $QUBES_AIR_DIST
 * (and its pkg/), next to the running program, in its ../share/qubes-air, or in the source tree's
 * dist/pkg/. Its control fields are read with `dpkg-deb -f` (never installed or run here) and
 * must say Package: qubes-air-agent and the Architecture the board needs.
 * Must never: take a loose agent binary or another package in its place (one way of laying the
 * agent's files out: the package's), or guess between several versions in one directory.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_PACKAGE, type AgentArch } from "../packaging/layout.ts";
import { ImageError, run } from "./common.ts";

function sha256Of(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export interface AgentPackage {
  readonly path: string;
  /** The file name (what the image keeps it as). */
  readonly name: string;
  readonly version: string;
  readonly arch: AgentArch;
  readonly size: number;
  /** Installed-Size, in bytes (for the free-space check: it is unpacked at first boot). */
  readonly installedBytes: number;
  readonly depends: string;
  readonly sha256: string;
}

const DEB_NAME = (arch: AgentArch) => new RegExp(`^${AGENT_PACKAGE}_[0-9][^_]*_${arch}\\.deb$`);

function searchDirs(env: Readonly<Record<string, string | undefined>>): string[] {
  const dirs: string[] = [];
  if (env.QUBES_AIR_DIST) dirs.push(join(env.QUBES_AIR_DIST, "pkg"), env.QUBES_AIR_DIST);
  const exeDir = dirname(process.execPath);
  dirs.push(exeDir, join(exeDir, "..", "share", "qubes-air"));
  try {
    dirs.push(resolve(dirname(fileURLToPath(import.meta.url)), "..", "dist", "pkg"));
  } catch {}
  return dirs;
}

function findIn(dir: string, arch: AgentArch): string | null {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => DEB_NAME(arch).test(n));
  } catch {
    return null;
  }
  if (names.length > 1) {
    throw new ImageError(
      `${dir} holds several agent packages (${names.sort().join(", ")}): give the one to use with --agent FILE`,
    );
  }
  return names.length === 1 ? join(dir, names[0]!) : null;
}

/** The control fields we need, from `dpkg-deb -f`. */
export function parseControl(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z][A-Za-z0-9-]*):\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

/** A package's Installed-Size in bytes (0 when it does not say). */
export function installedBytes(dpkgDeb: string, path: string): number {
  const r = run(dpkgDeb, ["-f", path, "Installed-Size"], { allowFail: true });
  const kib = r.status === 0 ? Number(r.stdout.toString("utf8").trim()) : 0;
  return Number.isFinite(kib) ? kib * 1024 : 0;
}

export function findAgentPackage(
  arch: AgentArch,
  given: string | undefined,
  dpkgDeb: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): AgentPackage {
  let path = given;
  if (path === undefined) {
    for (const d of searchDirs(env)) {
      path = findIn(d, arch) ?? undefined;
      if (path) break;
    }
    if (!path) {
      throw new ImageError(
        `cannot find ${AGENT_PACKAGE}_VERSION_${arch}.deb: run "bun run package" in the qubes-air sources ` +
          `(it writes dist/pkg/), then give --agent dist/pkg/${AGENT_PACKAGE}_VERSION_${arch}.deb or set QUBES_AIR_DIST=DIR`,
      );
    }
  }
  if (!existsSync(path) || !statSync(path).isFile()) throw new ImageError(`--agent ${path}: no such file`);
  const r = run(dpkgDeb, ["-f", path, "Package", "Version", "Architecture", "Installed-Size", "Depends"], {
    allowFail: true,
  });
  const f = r.status === 0 ? parseControl(r.stdout.toString("utf8")) : {};
  if (f.Package !== AGENT_PACKAGE || f.Architecture !== arch || !f.Version) {
    throw new ImageError(
      `--agent ${path} is not the ${arch} agent package: give ${AGENT_PACKAGE}_VERSION_${arch}.deb from "bun run package"` +
        (f.Package ? ` (it is ${f.Package} for ${f.Architecture})` : ""),
    );
  }
  const kib = Number(f["Installed-Size"] ?? "0");
  return {
    path,
    name: `${AGENT_PACKAGE}_${f.Version.replace(/^\d+:/, "")}_${arch}.deb`,
    version: f.Version,
    arch,
    size: statSync(path).size,
    installedBytes: Number.isFinite(kib) ? kib * 1024 : 0,
    depends: f.Depends ?? "",
    sha256: sha256Of(path),
  };
}
