/**
 * Finds the agent artefact an image needs (made by `bun run build`, scripts/build.ts): given with
 * --agent, or looked up in $QUBES_AIR_DIST, next to the running program, in its ../share/qubes-air,
 * or in the source tree's dist/. When a manifest.json lies beside it, the file's sha256 must match
 * (a stale or damaged artefact is refused). The kind is checked from the file itself: an aarch64
 * or x86-64 ELF executable, or (for the Node bundle) JavaScript.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ImageError } from "./common.ts";

export type AgentKind = "arm64" | "x64" | "node";

export const AGENT_FILES: Record<AgentKind, string> = {
  arm64: "qubes-air-agent-linux-arm64",
  x64: "qubes-air-agent-linux-x64",
  node: "qubes-air-agent-node.mjs",
};

const ELF_MACHINE: Record<Exclude<AgentKind, "node">, number> = { arm64: 183, x64: 62 };

function searchDirs(env: Readonly<Record<string, string | undefined>>): string[] {
  const dirs: string[] = [];
  if (env.QUBES_AIR_DIST) dirs.push(env.QUBES_AIR_DIST);
  const exeDir = dirname(process.execPath);
  dirs.push(exeDir, join(exeDir, "..", "share", "qubes-air"));
  try {
    dirs.push(resolve(dirname(fileURLToPath(import.meta.url)), "..", "dist"));
  } catch {}
  return dirs;
}

function head(path: string, n: number): Buffer {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(n);
    const got = readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

export function checkAgentKind(path: string, kind: AgentKind): void {
  const h = head(path, 64);
  const isElf = h.length >= 20 && h.readUInt32BE(0) === 0x7f454c46;
  if (kind === "node") {
    if (isElf || !/\.m?js$/.test(path)) {
      throw new ImageError(
        `${path} is not the agent's Node bundle (${AGENT_FILES.node}, from bun run build)`,
      );
    }
    return;
  }
  if (!isElf || h[4] !== 2 || h.readUInt16LE(18) !== ELF_MACHINE[kind]) {
    throw new ImageError(
      `${path} is not a ${kind === "arm64" ? "64-bit ARM (aarch64)" : "x86-64"} executable; ` +
        `use ${AGENT_FILES[kind]} from bun run build`,
    );
  }
}

/** The manifest's sha256 for `path` if a manifest.json lies beside it. */
function manifestHash(path: string): string | null {
  const mf = join(dirname(path), "manifest.json");
  if (!existsSync(mf)) return null;
  try {
    const doc = JSON.parse(readFileSync(mf, "utf8")) as { artefacts?: { file?: string; sha256?: string }[] };
    return doc.artefacts?.find((a) => a.file === basename(path))?.sha256 ?? null;
  } catch {
    return null;
  }
}

export function sha256Of(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export interface FoundAgent {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  /** True when a manifest beside it vouched for the hash. */
  readonly inManifest: boolean;
}

export function findAgent(
  kind: AgentKind,
  given: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): FoundAgent {
  let path = given;
  if (path === undefined) {
    path = searchDirs(env)
      .map((d) => join(d, AGENT_FILES[kind]))
      .find((p) => existsSync(p));
    if (!path) {
      throw new ImageError(
        `cannot find ${AGENT_FILES[kind]}: run "bun run build" in the qubes-air sources (it writes dist/), ` +
          "then give --agent dist/" +
          AGENT_FILES[kind] +
          " or set QUBES_AIR_DIST=DIR",
      );
    }
  }
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    throw new ImageError(`--agent ${path}: no such file`);
  }
  if (!st.isFile()) throw new ImageError(`--agent ${path} is not a regular file`);
  checkAgentKind(path, kind);
  const sha256 = sha256Of(path);
  const expected = manifestHash(path);
  if (expected !== null && expected !== sha256) {
    throw new ImageError(
      `${path} does not match the sha256 in ${join(dirname(path), "manifest.json")}: rebuild with bun run build`,
    );
  }
  return { path, size: st.size, sha256, inManifest: expected !== null };
}
