/**
 * Builds one .deb with `dpkg-deb --root-owner-group --build`: the staged files, DEBIAN/control,
 * conffiles, md5sums and maintainer scripts, /usr/share/doc/PKG/{copyright,changelog.gz} and the
 * lintian overrides (packaging/lintian/PKG, each with its reason).
 * Must never: leave its staging directory behind, or produce a package whose files are owned by
 * the building user (root:root always).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import type { Entry, PackageSpec } from "./layout.ts";
import { debPostinst, debPostrm, debPrerm } from "./scripts.ts";
import { FILES, type Manifest, stage } from "./stage.ts";

export const MAINTAINER = "qubes-air developers <qubes-air@users.noreply.github.com>";
export const HOMEPAGE = "https://github.com/qubes-air/qubes-air";

export function copyright(): string {
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: qubes-air
Source: ${HOMEPAGE}

Files: *
Copyright: 2025-2026 qubes-air developers
License: GPL-2+
 This program is free software; you can redistribute it and/or modify it under the terms of
 the GNU General Public License as published by the Free Software Foundation; either version 2
 of the License, or (at your option) any later version.
 .
 On Debian systems, the complete text of the GNU General Public License version 2 can be found
 in "/usr/share/common-licenses/GPL-2".
`;
}

/** A native package's changelog, dated by `date` (RFC 2822). */
export function changelog(name: string, version: string, date: Date): string {
  return `${name} (${version}) unstable; urgency=medium

  * Release ${version}.

 -- ${MAINTAINER}  ${date.toUTCString().replace("GMT", "+0000")}
`;
}

/** Every non-directory path under `dir` (files and symlinks), sorted. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (lstatSync(full).isDirectory()) out.push(...walk(full));
    else out.push(full);
  }
  return out;
}

const isLink = (p: string) => lstatSync(p).isSymbolicLink();

export function buildDeb(options: {
  spec: PackageSpec;
  arch: string;
  version: string;
  date: Date;
  dist: string;
  manifest: Manifest;
  checked: Map<string, string>;
  out: string;
}): string {
  const { spec, arch, version } = options;
  const work = mkdtempSync(join(tmpdir(), `qa-deb-${spec.name}-`));
  try {
    const root = join(work, "root");
    const doc = `/usr/share/doc/${spec.name}`;
    const extra: Entry[] = [
      { path: `${doc}/copyright`, mode: 0o644, from: { text: copyright() } },
      { path: `${doc}/changelog.gz`, mode: 0o644, from: { text: "" } },
      { path: `${doc}/README`, mode: 0o644, from: { files: `doc/${spec.name}.README` } },
    ];
    const overrides = join(FILES, "..", "lintian", spec.name);
    if (existsSync(overrides)) {
      extra.push({
        path: `/usr/share/lintian/overrides/${spec.name}`,
        mode: 0o644,
        from: { text: readFileSync(overrides, "utf8") },
      });
    }
    stage(spec, root, options.dist, options.manifest, options.checked, extra);
    // gzip -9n: no name or time stamp in the header (lintian: changelog-file-not-compressed, reproducible).
    writeFileSync(
      join(root, `.${doc}/changelog.gz`),
      gzipSync(changelog(spec.name, version, options.date), { level: 9 }),
    );
    const control = join(root, "DEBIAN");
    mkdirSync(control);
    const files = walk(root).filter((p) => !p.startsWith(`${control}/`));
    const md5 = files
      .filter((p) => !isLink(p))
      .map((p) => `${createHash("md5").update(readFileSync(p)).digest("hex")}  ${relative(root, p)}`);
    writeFileSync(join(control, "md5sums"), `${md5.join("\n")}\n`);
    const conf = spec.entries.filter((e) => e.conf).map((e) => e.path);
    if (conf.length > 0) writeFileSync(join(control, "conffiles"), `${conf.join("\n")}\n`);
    const installed = Math.ceil(files.reduce((n, p) => n + (isLink(p) ? 0 : statSync(p).size), 0) / 1024);
    const depends = [...spec.depends];
    if (spec.unit) depends.push("init-system-helpers (>= 1.54~)");
    writeFileSync(
      join(control, "control"),
      [
        `Package: ${spec.name}`,
        `Version: ${version}`,
        `Architecture: ${arch}`,
        `Maintainer: ${MAINTAINER}`,
        `Installed-Size: ${installed}`,
        ...(depends.length > 0 ? [`Depends: ${depends.join(", ")}`] : []),
        "Section: admin",
        "Priority: optional",
        `Homepage: ${HOMEPAGE}`,
        `Description: ${spec.summary}`,
        ...spec.description.split("\n").map((l) => ` ${l}`),
        "",
      ].join("\n"),
    );
    for (const [name, text] of [
      ["postinst", debPostinst(spec)],
      ["prerm", debPrerm(spec)],
      ["postrm", debPostrm(spec)],
    ] as const) {
      if (text) writeFileSync(join(control, name), text, { mode: 0o755 });
    }
    mkdirSync(options.out, { recursive: true });
    const file = join(options.out, `${spec.name}_${version}_${arch}.deb`);
    const r = spawnSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "-z1", "--build", root, file], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (r.status !== 0)
      throw new Error(`dpkg-deb failed for ${spec.name} ${arch}: ${r.stderr.toString().trim()}`);
    return file;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
