/**
 * The export directory's confinement on real files: the start-up check on configured paths, and
 * the races a local attacker (or a careless script) could run between a check and its use: a
 * directory on the way swapped for a link after it was resolved, and one swapped during the
 * walk. Refusals through the real agent: test/integration/copy-from-export.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConfinedEntry, packQfile, scanTree } from "../../calls/qfile-pack.ts";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { ConfigError } from "../../core/errors.ts";
import { COPY_FROM_MAX_OPEN_DIRS } from "../../core/qrexec/services.ts";
import { memoryPair } from "../../transport/memory.ts";
import { type ExportConfig, exportDirProblem } from "../protected-paths.ts";
import { ExportRefused, ExportTree } from "./export-dir.ts";

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function layout(): { base: string; c: ExportConfig; env: NodeJS.ProcessEnv } {
  const base = mkdtempSync(join(tmpdir(), "qa-export-"));
  made.push(base);
  const c: ExportConfig = {
    path: join(base, "etc", "agent.json"),
    exportDir: join(base, "home", "QubesOutgoing"),
    stateDir: join(base, "state"),
    gnupgHome: join(base, "state", "gnupg"),
    auditLog: join(base, "state", "audit.log"),
    policyDir: join(base, "etc", "policy.d"),
  };
  for (const d of [c.exportDir, c.stateDir, c.gnupgHome, c.policyDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(c.stateDir, "device.key"), "DEVICE-KEY-BYTES");
  return { base, c, env: { HOME: join(base, "home") } };
}

/** Packs `paths` confined to `tree` into a fresh directory; the result and what landed. */
async function pack(paths: string[], confined: { check(e: ConfinedEntry): Promise<void> }) {
  const [toUnpacker, fromPacker] = memoryPair();
  const [toPacker, fromUnpacker] = memoryPair();
  const dest = join(mkdtempSync(join(tmpdir(), "qa-export-dest-")), "in");
  made.push(dest);
  const unpacked = unpackQfile(fromPacker, toPacker, { dir: dest });
  try {
    const r = await packQfile(paths, toUnpacker, fromUnpacker, { confined });
    return { result: r, dest, unpacked: await unpacked };
  } finally {
    await toUnpacker.closeWrite().catch(() => {});
  }
}

describe("exportDirProblem: the start-up check on the configured paths", () => {
  const { c, env, base } = layout();
  const problem = (exportDir: string) => exportDirProblem({ ...c, exportDir }, env);

  test("a directory of its own is fine, also one whose name merely starts like a protected one", () => {
    expect(problem(c.exportDir)).toBeNull();
    expect(problem(`${c.stateDir}-export`)).toBeNull();
    expect(problem(join(base, "home", "QubesIncoming"))).toBeNull();
  });

  test("the state directory, inside it, or any parent of it is named with what it holds", () => {
    expect(problem(c.stateDir)).toBe(`is the agent's state directory (${c.stateDir}) or lies inside it`);
    expect(problem(join(c.gnupgHome, "x"))).toBe(
      `is the agent's state directory (${c.stateDir}) or lies inside it`,
    );
    expect(problem(base)).toBe(`contains the agent's state directory (${c.stateDir})`);
    expect(problem("/")).toBe(`contains the agent's state directory (${c.stateDir})`);
    expect(problem(`${c.stateDir}/./`)).toBe(
      `is the agent's state directory (${c.stateDir}) or lies inside it`,
    );
  });

  test("$HOME holds ~/.gnupg; the policy directory and the configuration are protected too", () => {
    expect(problem(join(base, "home"))).toBe(`contains a GnuPG home (${join(base, "home", ".gnupg")})`);
    expect(problem(join(base, "etc"))).toBe(`contains the policy directory (${c.policyDir})`);
    expect(
      exportDirProblem({ ...c, exportDir: join(base, "etc"), policyDir: "/etc/qubes-air/policy.d" }, env),
    ).toBe(`contains the agent's configuration (${c.path})`);
    expect(problem(join(c.policyDir, "x"))).toBe(
      `is the policy directory (${c.policyDir}) or lies inside it`,
    );
    expect(exportDirProblem({ ...c, exportDir: "/srv/out", gnupgHome: "/srv/out/gnupg" }, env)).toBe(
      "contains the GnuPG home (/srv/out/gnupg)",
    );
  });
});

describe("ExportTree: races between a check and its use", () => {
  test("a directory swapped for a link after the path was resolved: the open descriptor still reads the original", async () => {
    const { c, env } = layout();
    mkdirSync(join(c.exportDir, "d", "sub"), { recursive: true });
    writeFileSync(join(c.exportDir, "d", "sub", "device.key"), "innocent\n");
    const tree = await ExportTree.open(c, env);
    try {
      const path = await tree.resolve("d/sub/device.key");
      // The swap: sub moves away and a link to the state directory takes its name.
      renameSync(join(c.exportDir, "d", "sub"), join(c.exportDir, "d", "old"));
      symlinkSync(c.stateDir, join(c.exportDir, "d", "sub"));
      await scanTree([path], { confined: tree });
      const { result, dest } = await pack([path], tree);
      expect(result.code).toBe(0);
      expect(await Bun.file(join(dest, "device.key")).text()).toBe("innocent\n");
    } finally {
      await tree.close();
    }
    // and a fresh resolve sees the link and refuses
    const again = await ExportTree.open(c, env);
    try {
      await expect(again.resolve("d/sub/device.key")).rejects.toBeInstanceOf(ExportRefused);
    } finally {
      await again.close();
    }
  });

  test("a directory swapped for a link during the walk is not followed: the copy stops", async () => {
    const { c, env } = layout();
    mkdirSync(join(c.exportDir, "d", "sub"), { recursive: true });
    writeFileSync(join(c.exportDir, "d", "sub", "device.key"), "innocent\n");
    const tree = await ExportTree.open(c, env);
    try {
      const path = await tree.resolve("d");
      let swapped = false;
      // Swapped after the walk's lstat and check of d/sub, before it opens d/sub.
      const racing = {
        check: async (e: ConfinedEntry) => {
          await tree.check(e);
          if (e.rel.toString() === "d/sub" && !swapped) {
            swapped = true;
            renameSync(join(c.exportDir, "d", "sub"), join(c.exportDir, "d", "old"));
            symlinkSync(c.stateDir, join(c.exportDir, "d", "sub"));
          }
        },
      };
      const error = await pack([path], racing).catch((e) => e);
      expect(swapped).toBe(true);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe('cannot open directory "d/sub": not a directory (ENOTDIR)');
    } finally {
      await tree.close();
    }
  });

  test("a link swapped in for a file after the scan is checked again when it is sent", async () => {
    const { c, env } = layout();
    mkdirSync(join(c.exportDir, "d"), { recursive: true });
    writeFileSync(join(c.exportDir, "d", "a"), "a\n");
    writeFileSync(join(c.exportDir, "d", "b"), "b\n");
    const tree = await ExportTree.open(c, env);
    try {
      const path = await tree.resolve("d");
      await scanTree([path], { confined: tree });
      rmSync(join(c.exportDir, "d", "b"));
      symlinkSync(join(c.stateDir, "device.key"), join(c.exportDir, "d", "b"));
      const error = await pack([path], tree).catch((e) => e);
      expect(error).toBeInstanceOf(ExportRefused);
      expect((error as Error).message).toBe('"d/b" is a symbolic link that points out of what is being sent');
    } finally {
      await tree.close();
    }
  });
});

describe("ExportTree.resolve", () => {
  test("names that lead out, or to the root itself, are refused with a fixed code", async () => {
    const { c, env } = layout();
    writeFileSync(join(c.exportDir, "f"), "f\n");
    const tree = await ExportTree.open(c, env);
    const code = (p: string) =>
      tree.resolve(p).then(
        () => "ok",
        (e: ExportRefused) => e.code,
      );
    try {
      expect(await code("f")).toBe("ok");
      expect(await code(`${c.exportDir}//./f`)).toBe("ok");
      expect(await code(`${c.exportDir}-other/f`)).toBe("outside");
      expect(await code(join(c.stateDir, "device.key"))).toBe("outside");
      expect(await code("../../state/device.key")).toBe("dot-dot");
      expect(await code("./")).toBe("export-root");
      expect(await code("missing/f")).toBe("missing");
      expect(await code("f/g")).toBe("unreadable");
    } finally {
      await tree.close();
    }
  });

  test("each directory on the way is opened once, at most COPY_FROM_MAX_OPEN_DIRS of them, all closed after", async () => {
    const { c, env } = layout();
    mkdirSync(join(c.exportDir, "d"));
    for (let i = 0; i < 1000; i++) writeFileSync(join(c.exportDir, "d", `f${i}`), "");
    for (let i = 0; i <= COPY_FROM_MAX_OPEN_DIRS; i++) {
      mkdirSync(join(c.exportDir, `e${i}`));
      writeFileSync(join(c.exportDir, `e${i}`, "x"), "");
    }
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    const tree = await ExportTree.open(c, env);
    try {
      for (let i = 0; i < 1000; i++) await tree.resolve(`d/f${i}`);
      expect(fds() - before).toBe(2); // the export directory and d
      for (let i = 0; i < COPY_FROM_MAX_OPEN_DIRS - 1; i++) await tree.resolve(`e${i}/x`);
      const error = await tree.resolve(`e${COPY_FROM_MAX_OPEN_DIRS}/x`).catch((e) => e);
      expect([error.code, error.message]).toEqual([
        "too-many",
        `the paths go through more than ${COPY_FROM_MAX_OPEN_DIRS} directories; ask for fewer at a time, or for their parent`,
      ]);
    } finally {
      await tree.close();
    }
    expect(fds()).toBe(before);
  });

  test("a request with bytes unsafe for a terminal is shown sanitised", async () => {
    const { c, env } = layout();
    const tree = await ExportTree.open(c, env);
    try {
      await expect(tree.resolve("\x1b[31mred\x07")).rejects.toThrow(
        '"_[31mred_" does not exist in the export directory',
      );
    } finally {
      await tree.close();
    }
  });

  test("a missing export directory is explained", async () => {
    const { c, env } = layout();
    rmSync(c.exportDir, { recursive: true });
    await expect(ExportTree.open(c, env)).rejects.toThrow(
      `the export directory ${c.exportDir} does not exist on the device; put what may be copied out there`,
    );
  });
});
