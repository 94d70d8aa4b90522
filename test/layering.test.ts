/**
 * The whole dependency graph of DESIGN.md "Components and layout", as data, checked on the source
 * text: every top-level folder with TypeScript in it is placed in FOLDERS, every import between
 * two folders is an edge of EDGES (each with its reason), and the finer rules below hold. A
 * violation fails here with file:line before it becomes a runtime surprise on Node (the Armory),
 * in a compiled binary, or a tangle nobody can move.
 *
 * Choices this graph makes:
 * - platform/ -> transport/, never the reverse: platform/ produces byte streams (sockets, pipes,
 *   tty readers), so it builds on transport's contract (transport.ts, node-stream.ts).
 *   transport/serial.ts needs three runtime calls (stat, spawn for stty, the tty reader): it
 *   declares them as SerialPlatform and callers pass `platform`; spawn failures are matched by
 *   SpawnError's `spawnFailed` field, not by importing the class.
 * - images/ -> agent/config.ts only: the agent's config file is the contract between the image
 *   builder (which writes agent.json) and the agent (which reads it); images checks what it
 *   writes with the agent's own parseConfig, so the two can never disagree. It stays in agent/
 *   because it is not pure enough for core/ (node:path, homedir, hw/boards' BoardId); instead
 *   its import closure may reach no other agent/ file (checked below).
 * - Test files (*.test.ts) are wiring: they may also import test/ and fixtures/, and transport's
 *   tests a real platform. demo/ and bench/, tests included, never touch test/: what they share
 *   with the tests lives in fixtures/.
 * - The finer rules (host/ by process, agent/ by concern, the relay's small start-up) apply to
 *   product files, not to their tests.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { importsOf, stripComments, targetOf } from "./helpers/source-imports.ts";

const ROOT = resolve(import.meta.dir, "..");

/** Every top-level folder that holds TypeScript, with what it is. */
const FOLDERS: Readonly<Record<string, string>> = {
  core: "pure protocol logic shared by agent and host: no I/O, no runtime globals",
  platform: "runtime adapters (spawn, sockets, files, clock, native crypto): Bun and Node",
  transport: "byte streams (tcp, serial, memory pair) and their written contract",
  calls: "the one place that reads and writes call framing: caller, callee, socket bridge",
  agent: "the device runtime, by concern: link/, services/, confirmation/, cli/",
  host: "sys-remote, by process: daemon/, relay/, cli/",
  images: "flashable Pi/Armory images, cloud-init, the safe flasher",
  hw: "board profiles, LEDs, buttons, display, USB gadget, udev rules",
  scripts: "the release build (bun run build): builds entry files by path",
  fixtures: "stand-ins and process helpers shared by test/, demo/ and bench/",
  test: "integration and end-to-end tests, vector runners, property tests, test-only helpers",
  demo: "bun run demo / demo:link: the product end to end on one machine",
  bench: "bun run bench: the figures of DESIGN.md, measured against peers",
};

const PRODUCT = ["core", "platform", "transport", "calls", "agent", "host", "images", "hw"];

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly why: string;
  /** When only some files of `to` may be imported: root-relative paths. */
  readonly only?: readonly string[];
}

const EDGES: readonly Edge[] = [
  { from: "transport", to: "core", why: "errors: TransportError's base, ConfigError, assert" },
  { from: "platform", to: "core", why: "errors, the crypto interfaces its native AEAD and X25519 implement" },
  {
    from: "platform",
    to: "transport",
    only: ["transport/transport.ts", "transport/node-stream.ts"],
    why: "platform produces byte streams (sockets, pipes, tty readers) to transport's contract",
  },
  { from: "calls", to: "core", why: "call semantics, exit codes and names of core/qrexec" },
  { from: "calls", to: "platform", why: "spawning the service process of a call" },
  { from: "calls", to: "transport", why: "a call's bytes travel on ByteStreams" },
  { from: "hw", to: "core", why: "errors" },
  { from: "hw", to: "platform", why: "spawning gpio tools, reading /sys and the device tree" },
  { from: "hw", to: "transport", why: "the console confirmation input reads a tty as a ByteSource" },
  ...["core", "platform", "transport", "calls", "hw"].map((to) => ({
    from: "agent",
    to,
    why: "the device runtime wires the link, calls, runtime and board support",
  })),
  { from: "images", to: "core", why: "qube names, the default device policy" },
  { from: "images", to: "platform", why: "probing block devices for the flasher" },
  { from: "images", to: "hw", why: "board profiles, USB gadget and udev files written into the image" },
  {
    from: "images",
    to: "agent",
    only: ["agent/config.ts"],
    why: "the agent's config file format is the contract between image builder and agent",
  },
  ...["core", "platform", "transport", "calls"].map((to) => ({
    from: "host",
    to,
    why: "sys-remote's processes wire the link, calls and runtime",
  })),
  { from: "host", to: "images", why: "`qubes-air image` and `qubes-air flash` run in sys-remote" },
  ...["core", "platform", "transport"].map((to) => ({
    from: "fixtures",
    to,
    why: "link-peer wires the core session on real transports; agent/host run as processes, by path",
  })),
  ...[...PRODUCT, "scripts", "fixtures"].map((to) => ({
    from: "test",
    to,
    why: "the tests reach what they test; scripts/ for the build test",
  })),
  ...["demo", "bench"].flatMap((from) =>
    [...PRODUCT, "fixtures"].map((to) => ({ from, to, why: "runs the product with the shared fixtures" })),
  ),
];

/** Extra edges for *.test.ts files only. */
const TEST_EDGES: readonly Edge[] = [
  ...[...PRODUCT, "scripts"].flatMap((from) => [
    { from, to: "test", why: "test-only helpers (stream contract, duplex pairs, gpg listings)" },
    { from, to: "fixtures", why: "pty pairs and process helpers" },
  ]),
  { from: "transport", to: "platform", why: "tests are wiring: a real runtime to open a serial line with" },
];

/** Finer rules inside a folder: files under `files` never import under `never`. */
interface Rule {
  readonly files: string;
  /** Files under `files` that the rule does not cover (prefixes). */
  readonly notFiles?: readonly string[];
  readonly never: readonly string[];
  readonly why: string;
  /** Known, reasoned exceptions: [importing file, imported file]. */
  readonly except?: readonly (readonly [string, string])[];
}

const RULES: readonly Rule[] = [
  {
    files: "host/relay/",
    never: ["host/daemon/", "host/cli/"],
    why: "the relay starts once per call: its start-up must stay small",
  },
  {
    files: "host/daemon/",
    never: ["host/cli/", "host/relay/"],
    why: "the daemon is its own process; the CLI and relay talk to it over its socket",
  },
  { files: "host/cli/", never: ["host/relay/"], why: "the relay is its own binary" },
  {
    files: "host/",
    notFiles: ["host/daemon/", "host/relay/", "host/cli/", "host/main.ts", "host/install/"],
    never: ["host/daemon/", "host/relay/", "host/cli/"],
    why: "host/'s top-level files (paths, socket path, version, daemon-call) are shared by all processes",
  },
  {
    files: "agent/",
    notFiles: ["agent/cli/", "agent/main.ts", "agent/daemon.ts"],
    never: ["agent/cli/", "agent/main.ts", "agent/daemon.ts"],
    why: "the entry points (main, cli/, daemon.ts) wire link/, services/ and confirmation/, not the reverse",
    except: [["agent/services/gpg/keysetup.ts", "agent/cli/cli.ts"]],
  },
];

/** Import closures that must stay small: from `entry`, nothing under `never` is reachable. */
const CLOSURES: readonly { entry: string; never: readonly string[]; why: string }[] = [
  {
    entry: "host/relay/main.ts",
    never: ["host/daemon/", "host/cli/", "images/", "agent/", "hw/"],
    why: "the relay binary starts once per call",
  },
  {
    entry: "agent/config.ts",
    never: ["agent/link/", "agent/services/", "agent/cli/", "agent/daemon.ts", "agent/main.ts", "platform/"],
    why: "images/ imports it: the config contract must not drag the agent runtime along",
  },
];

// --- the checkers (pure functions of text, tested on samples at the end) ---

const isTest = (file: string) => /\.test\.[a-z]+$/.test(file);
const topOf = (path: string) => path.split("/")[0]!;

/** Imports from `file` into another top-level folder that no edge allows. */
function edgeViolations(file: string, src: string, edges = EDGES, testEdges = TEST_EDGES): string[] {
  const from = topOf(file);
  const out: string[] = [];
  const allowed = isTest(file) ? [...edges, ...testEdges] : edges;
  for (const { spec, line } of importsOf(stripComments(src))) {
    if (!spec.startsWith(".")) continue;
    const target = targetOf(ROOT, file, spec);
    const to = topOf(target);
    if (to === from) continue;
    if (!(to in FOLDERS)) {
      out.push(`${file}:${line}: imports ${spec}, outside every placed folder`);
      continue;
    }
    const ok = allowed.some((e) => e.from === from && e.to === to && (!e.only || e.only.includes(target)));
    if (!ok) out.push(`${file}:${line}: imports ${spec} (no edge ${from}/ -> ${target})`);
  }
  return out;
}

function ruleViolations(file: string, src: string, rules = RULES): string[] {
  if (isTest(file)) return [];
  const out: string[] = [];
  const applies = rules.filter(
    (r) => file.startsWith(r.files) && !r.notFiles?.some((n) => file.startsWith(n)),
  );
  if (applies.length === 0) return out;
  for (const { spec, line } of importsOf(stripComments(src))) {
    if (!spec.startsWith(".")) continue;
    const target = targetOf(ROOT, file, spec);
    for (const r of applies) {
      if (!r.never.some((n) => target.startsWith(n))) continue;
      if (r.except?.some(([f, t]) => f === file && t === target)) continue;
      out.push(`${file}:${line}: imports ${spec} (${r.why})`);
    }
  }
  return out;
}

/** demo/ and bench/ may not name a path in test/ either (a spawned file is a dependency too). */
function testPathViolations(file: string, src: string): string[] {
  const out: string[] = [];
  stripComments(src)
    .split("\n")
    .forEach((text, i) => {
      if (/(?:^|["'`/])test\/[\w.-]+/.test(text)) out.push(`${file}:${i + 1}: names a path in test/`);
    });
  return out;
}

/** Top-level folders holding TypeScript that FOLDERS does not place. */
function unplacedFolders(tops: readonly { name: string; hasTs: boolean }[], placed = FOLDERS): string[] {
  return tops.filter((t) => t.hasTs && !(t.name in placed)).map((t) => t.name);
}

/** One cycle among the edges' folders, or null. */
function findCycle(edges: readonly Pick<Edge, "from" | "to">[]): string[] | null {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, "open" | "done">();
  const walk = (node: string, path: string[]): string[] | null => {
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    if (state.get(node) === "done") return null;
    state.set(node, "open");
    for (const n of next.get(node) ?? []) {
      const c = walk(n, [...path, node]);
      if (c) return c;
    }
    state.set(node, "done");
    return null;
  };
  for (const node of next.keys()) {
    const c = walk(node, []);
    if (c) return c;
  }
  return null;
}

const FORBIDDEN_GLOBALS: readonly [RegExp, string][] = [
  [/(?:^|[^.\w$])Bun\s*[.[]/, "Bun."],
  [/(?:^|[^.\w$])process\s*[.[]/, "process."],
  [/(?:^|[^.\w$])Buffer\b/, "Buffer"],
  [/(?:^|[^.\w$])require\s*\(/, "require("],
  [/\bimport\s*\.\s*meta\b/, "import.meta"],
  [/\bglobalThis\s*\.\s*(?:Bun|process|Buffer|require)\b/, "globalThis runtime global"],
];

/** Violations of the core/ rules in one file's text, as "file:line: what". */
function coreViolations(file: string, src: string): string[] {
  const code = stripComments(src);
  const bare = stripComments(src, true);
  const out: string[] = [];
  for (const { spec, line } of importsOf(code)) {
    if (spec.startsWith("@noble/")) continue;
    if (spec.startsWith(".")) {
      if (topOf(targetOf(ROOT, file, spec)) === "core") continue;
      out.push(`${file}:${line}: imports ${spec}, outside core/`);
    } else {
      out.push(`${file}:${line}: imports ${spec} (core/ may import only core/ and @noble/*)`);
    }
  }
  bare.split("\n").forEach((text, i) => {
    for (const [pattern, name] of FORBIDDEN_GLOBALS) {
      if (pattern.test(text)) out.push(`${file}:${i + 1}: uses ${name} (core/ has no runtime globals)`);
    }
  });
  return out;
}

// --- the tree ---

const SKIP = new Set(["node_modules", "dist", ".git"]);
const SOURCE = /\.(ts|tsx|mts|js|mjs)$/;

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    if (SKIP.has(e.name) || e.name.startsWith(".")) continue;
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...filesUnder(rel));
    else if (SOURCE.test(e.name) && !e.name.endsWith(".d.ts")) out.push(rel);
  }
  return out.sort();
}

const read = (file: string) => readFileSync(join(ROOT, file), "utf-8");
// The checker's own samples below are strings that look like imports.
const SELF = "test/layering.test.ts";
const ALL = Object.keys(FOLDERS)
  .flatMap(filesUnder)
  .filter((f) => f !== SELF);

function closureOf(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file) || !SOURCE.test(file)) continue;
    seen.add(file);
    for (const { spec } of importsOf(stripComments(read(file)))) {
      if (spec.startsWith(".")) todo.push(targetOf(ROOT, file, spec));
    }
  }
  return seen;
}

describe("layering: the whole graph (DESIGN.md 'Components and layout')", () => {
  test("every top-level folder with TypeScript in it is placed", () => {
    const tops = readdirSync(ROOT, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !SKIP.has(e.name) && !e.name.startsWith("."))
      .map((e) => ({ name: e.name, hasTs: filesUnder(e.name).length > 0 }));
    expect(unplacedFolders(tops)).toEqual([]);
  });

  test("every import between folders is a listed edge", () => {
    expect(ALL.length).toBeGreaterThan(300);
    expect(ALL.flatMap((f) => edgeViolations(f, read(f)))).toEqual([]);
  });

  test("the folder graph has no cycle (so none between platform/ and transport/)", () => {
    expect(findCycle(EDGES)).toBeNull();
    expect(EDGES.some((e) => e.from === "transport" && e.to === "platform")).toBe(false);
  });

  test("host/ by process and agent/ by concern keep to their finer rules", () => {
    const files = ALL.filter((f) => f.startsWith("host/") || f.startsWith("agent/"));
    expect(files.flatMap((f) => ruleViolations(f, read(f)))).toEqual([]);
  });

  test("the relay's and the config contract's import closures stay small", () => {
    const reached = CLOSURES.flatMap((c) =>
      [...closureOf(c.entry)]
        .filter((f) => c.never.some((n) => f.startsWith(n)))
        .map((f) => `${c.entry} reaches ${f} (${c.why})`),
    );
    expect(reached).toEqual([]);
  });

  test("demo/ and bench/ name no path in test/", () => {
    const files = ALL.filter((f) => f.startsWith("demo/") || f.startsWith("bench/"));
    expect(files.length).toBeGreaterThan(3);
    expect(files.flatMap((f) => testPathViolations(f, read(f)))).toEqual([]);
  });

  test("core/ imports only core/ and @noble/*, and uses no Bun/Node globals", () => {
    const files = ALL.filter((f) => f.startsWith("core/") && !isTest(f));
    expect(files.length).toBeGreaterThan(10);
    expect(files.flatMap((f) => coreViolations(f, read(f)))).toEqual([]);
  });
});

describe("the checker itself", () => {
  const sample = [
    'import { a } from "./ok.ts";', // 1
    'import type { B } from "../../platform/platform.ts";', // 2
    "import {", // 3
    "  c,", // 4
    '} from "node:fs";', // 5
    'import "bun:sqlite";', // 6
    'export * from "../noise/x.ts";', // 7
    'const m = await import("../../agent/config.ts");', // 8
    "// import { gone } from 'node:os'; Bun.spawn(); process.exit()", // 9
    "/* Buffer.from(x) */ const t = Bun.file(p);", // 10
    "const n = process.env.X ?? Buffer.alloc(1);", // 11
    'const s = "see Bun. docs"; const o = obj.process.x; import { n } from "@noble/hashes/sha2.js";', // 12
    "const r = require('fs'); const d = import.meta.dir;", // 13
  ].join("\n");
  const found = coreViolations("core/session/sample.ts", sample);

  test("core: finds each kind of violation with its line", () => {
    const lines = found.map((v) => Number(v.split(":")[1])).sort((a, b) => a - b);
    expect(lines).toEqual([2, 5, 6, 8, 10, 11, 11, 13, 13, 13]);
    expect(found.join("\n")).toContain("core/session/sample.ts:5: imports node:fs");
  });

  test("core: ignores comments, property names and allowed imports", () => {
    for (const line of [1, 7, 9, 12]) expect(found.some((v) => v.includes(`sample.ts:${line}:`))).toBe(false);
  });

  test("edges: an import no edge allows, with file:line and the missing edge", () => {
    expect(edgeViolations("transport/tcp.ts", 'import { x } from "../host/daemon/daemon.ts";')).toEqual([
      "transport/tcp.ts:1: imports ../host/daemon/daemon.ts (no edge transport/ -> host/daemon/daemon.ts)",
    ]);
    expect(
      edgeViolations("transport/serial.ts", '\nimport { platform } from "../platform/index.ts";'),
    ).toEqual([
      "transport/serial.ts:2: imports ../platform/index.ts (no edge transport/ -> platform/index.ts)",
    ]);
    expect(edgeViolations("platform/bun.ts", 'import { x } from "../core/errors.ts";')).toEqual([]);
    expect(
      edgeViolations("transport/serial.test.ts", 'import { platform } from "../platform/index.ts";'),
    ).toEqual([]);
  });

  test("edges: `only` limits an edge to the listed files", () => {
    expect(
      edgeViolations("platform/node.ts", 'import type { ByteStream } from "../transport/transport.ts";'),
    ).toEqual([]);
    expect(
      edgeViolations("platform/node.ts", 'import { openSerial } from "../transport/serial.ts";'),
    ).toHaveLength(1);
    expect(edgeViolations("images/cloud.ts", 'import { parseConfig } from "../agent/config.ts";')).toEqual(
      [],
    );
    expect(edgeViolations("images/cloud.ts", 'import { x } from "../agent/link/listen.ts";')).toEqual([
      "images/cloud.ts:1: imports ../agent/link/listen.ts (no edge images/ -> agent/link/listen.ts)",
    ]);
  });

  test("edges: demo/ and bench/ reach fixtures/, never test/, tests included", () => {
    expect(edgeViolations("bench/run.ts", 'import { ptyPair } from "../fixtures/pty.ts";')).toEqual([]);
    expect(
      edgeViolations("demo/zone-demo.ts", 'import { ptyPair } from "../test/helpers/pty.ts";'),
    ).toHaveLength(1);
    expect(
      edgeViolations("bench/bench.test.ts", 'import { x } from "../test/helpers/duplex-pair.ts";'),
    ).toHaveLength(1);
    expect(edgeViolations("core/x.test.ts", 'import { x } from "../test/helpers/duplex-pair.ts";')).toEqual(
      [],
    );
    expect(
      edgeViolations("fixtures/pty.ts", 'import { x } from "../test/helpers/duplex-pair.ts";'),
    ).toHaveLength(1);
    expect(edgeViolations("bench/run.ts", 'import { x } from "../../elsewhere/x.ts";')).toEqual([
      "bench/run.ts:1: imports ../../elsewhere/x.ts, outside every placed folder",
    ]);
  });

  test("paths: demo/ and bench/ may not name a file in test/", () => {
    const src = 'const a = join(ROOT, "fixtures/link-peer.ts");\nconst b = join(ROOT, "test/fixtures/x.ts");';
    expect(testPathViolations("bench/run.ts", src)).toEqual(["bench/run.ts:2: names a path in test/"]);
    expect(
      testPathViolations("demo/x.ts", '// see test/integration/demo.test.ts\nconst latest = "x";'),
    ).toEqual([]);
  });

  test("rules: host/ by process, with reasons; tests and known exceptions pass", () => {
    expect(ruleViolations("host/relay/relay.ts", 'import { Daemon } from "../daemon/daemon.ts";')).toEqual([
      "host/relay/relay.ts:1: imports ../daemon/daemon.ts (the relay starts once per call: its start-up must stay small)",
    ]);
    expect(ruleViolations("host/paths.ts", 'import { x } from "./cli/common.ts";')).toHaveLength(1);
    expect(
      ruleViolations("host/cli/list.ts", 'import { loadRegistry } from "../daemon/registry.ts";'),
    ).toEqual([]);
    expect(ruleViolations("host/relay/relay.test.ts", 'import { x } from "../daemon/daemon.ts";')).toEqual(
      [],
    );
    expect(ruleViolations("agent/link/sessions.ts", 'import { x } from "../cli/cli.ts";')).toHaveLength(1);
    expect(ruleViolations("agent/services/gpg/keysetup.ts", 'import { x } from "../../cli/cli.ts";')).toEqual(
      [],
    );
  });

  test("folders: an unplaced folder with TypeScript fails, one without does not", () => {
    const tops = [
      { name: "core", hasTs: true },
      { name: "salt", hasTs: false },
      { name: "tools", hasTs: true },
    ];
    expect(unplacedFolders(tops)).toEqual(["tools"]);
  });

  test("cycles: found through several folders, none in a chain", () => {
    const chain = [
      { from: "a", to: "b" },
      { from: "b", to: "c" },
    ];
    expect(findCycle(chain)).toBeNull();
    expect(findCycle([...chain, { from: "c", to: "a" }])).toEqual(["a", "b", "c", "a"]);
  });
});
