/**
 * `bun run package [-- --dist DIR] [--out DIR] [--version V]`: the five packages in dist/pkg/,
 * from `bun run build`'s artefacts (dist/ and dist/manifest.json; built first when missing):
 *   qubes-air-sys-remote_V_amd64.deb, qubes-air-sys-remote-V-1.x86_64.rpm   (sys-remote template)
 *   qubes-air-dom0-V-1.noarch.rpm                                            (dom0)
 *   qubes-air-agent_V_{arm64,armhf,amd64}.deb                                (devices, cloud VMs)
 * What goes where: packaging/layout.ts; tools: dpkg-deb, rpmbuild (scripts/system-deps.sh).
 * The Salt formula is whatever salt/ holds at build time, under /srv/formulas/base/qubes-air-formula.
 * Must never: package an artefact that does not match the manifest, or leave a half-written
 * package under its final name (each is built in a temporary directory and moved at the end).
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { buildAll } from "../scripts/build.ts";
import { buildDeb } from "./deb.ts";
import { AGENT_ARCHES, agent, dom0, sysRemote } from "./layout.ts";
import { buildRpm } from "./rpm.ts";
import type { Manifest } from "./stage.ts";

const ROOT = resolve(import.meta.dir, "..");

export interface PackageOptions {
  dist: string;
  out: string;
  /** Default: package.json's version. */
  version?: string;
  /** Default: ROOT/salt. */
  salt?: string;
  log?: (t: string) => void;
}

/** salt/** as {rel, file}, or [] when there is no salt/ yet. */
export function saltFiles(dir: string): { rel: string; file: string }[] {
  if (!existsSync(dir)) return [];
  const out: { rel: string; file: string }[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const st = lstatSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile() && !name.startsWith(".")) out.push({ rel: relative(dir, full), file: full });
    }
  };
  walk(dir);
  return out;
}

const VERSION = /^[0-9][0-9.]*(\+[a-z0-9.]+)?$/;

export function buildPackages(options: PackageOptions): string[] {
  const log = options.log ?? ((t: string) => process.stderr.write(t));
  process.umask(0o022);
  for (const tool of ["dpkg-deb", "rpmbuild"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      throw new Error(`${tool} is missing: install it with scripts/system-deps.sh (Debian: dpkg, rpm)`);
    }
  }
  const mf = join(options.dist, "manifest.json");
  if (!existsSync(mf)) {
    log(`no ${mf}: running the release build first\n`);
    buildAll({ out: options.dist, log });
  }
  const manifest = JSON.parse(readFileSync(mf, "utf8")) as Manifest;
  const version = options.version ?? manifest.version;
  if (!VERSION.test(version))
    throw new Error(`bad package version ${JSON.stringify(version)} (digits and dots)`);
  const date = new Date();
  const checked = new Map<string, string>();
  const tmp = `${options.out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const common = { version, date, dist: options.dist, manifest, checked, out: tmp };
  const salt = saltFiles(options.salt ?? join(ROOT, "salt"));
  const made: string[] = [];
  const step = (what: string, fn: () => string) => {
    const started = performance.now();
    const file = fn();
    made.push(file);
    log(`${what}: ${relative(tmp, file)} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  };
  try {
    step("deb", () => buildDeb({ ...common, spec: sysRemote("deb"), arch: "amd64" }));
    step("rpm", () => buildRpm({ ...common, spec: sysRemote("rpm"), arch: "x86_64", release: "1" }));
    if (salt.length === 0) log("note: no salt/ here: qubes-air-dom0 holds the policy file only\n");
    step("rpm", () => buildRpm({ ...common, spec: dom0(salt), arch: "noarch", release: "1" }));
    for (const arch of AGENT_ARCHES) step("deb", () => buildDeb({ ...common, spec: agent(arch), arch }));
    mkdirSync(options.out, { recursive: true });
    const final = made.map((f) => {
      const to = join(options.out, relative(tmp, f));
      renameSync(f, to);
      return to;
    });
    log(`${final.length} packages in ${options.out}\n`);
    return final;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function parseCli(argv: string[]): PackageOptions {
  const opts: PackageOptions = { dist: join(ROOT, "dist"), out: join(ROOT, "dist", "pkg") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (!v) throw new Error(`${a} needs a value (see --help)`);
      return v;
    };
    if (a === "--dist") opts.dist = resolve(next());
    else if (a === "--out") opts.out = resolve(next());
    else if (a === "--version") opts.version = next();
    else if (a === "--salt") opts.salt = resolve(next());
    else if (a === "--help" || a === "-h") {
      process.stdout.write("Usage: bun run package [-- --dist DIR] [--out DIR] [--version V] [--salt DIR]\n");
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  return opts;
}

if (import.meta.main) {
  try {
    buildPackages(parseCli(process.argv.slice(2)));
  } catch (e) {
    process.stderr.write(`package: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
