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
 * - images/ -> packaging/layout.ts only: the image builder and cloud-init install the agent
 *   package (one way of laying the agent's files out) and take its paths from the package's
 *   layout rather than restating them; the package builder itself (dpkg-deb, rpmbuild) stays out.
 * - Test files (*.test.ts) are wiring: they may also import test/ and fixtures/, and transport's
 *   tests a real platform. demo/, bench/ and chaos/, tests included, never touch test/: what
 *   they share with the tests lives in fixtures/.
 * - The finer rules (host/ by process, agent/ by concern, the relay's small start-up) apply to
 *   product files, not to their tests.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  closureOf,
  coreViolations,
  type Edge,
  edgeViolations,
  filesUnder,
  findCycle,
  type Graph,
  isTest,
  type Rule,
  ruleViolations,
  SKIP_DIRS,
  testPathViolations,
  unplacedFolders,
} from "./helpers/layering-check.ts";

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
  packaging: "bun run package: the deb and rpm packages, from the release build's artefacts",
  fixtures: "stand-ins and process helpers shared by test/, demo/ and bench/",
  test: "integration and end-to-end tests, vector runners, property tests, test-only helpers",
  demo: "bun run demo / demo:link: the product end to end on one machine",
  bench: "bun run bench: the figures of DESIGN.md, measured against peers",
  chaos: "bun run chaos: the standing fault suite and load figures against real processes",
};

const PRODUCT = ["core", "platform", "transport", "calls", "agent", "host", "images", "hw"];

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
  {
    from: "images",
    to: "packaging",
    only: ["packaging/layout.ts"],
    why: "images and cloud-init install the agent package; its layout is the one statement of where agent files go",
  },
  { from: "host", to: "images", why: "`qubes-air image` and `qubes-air flash` run in sys-remote" },
  {
    from: "packaging",
    to: "scripts",
    why: "packages the release build's artefacts (and runs it when missing)",
  },
  { from: "packaging", to: "hw", why: "the udev rules the sys-remote package installs" },
  ...["core", "platform", "transport"].map((to) => ({
    from: "fixtures",
    to,
    why: "link-peer wires the core session on real transports; agent/host run as processes, by path",
  })),
  ...[...PRODUCT, "scripts", "packaging", "fixtures"].map((to) => ({
    from: "test",
    to,
    why: "the tests reach what they test; scripts/ and packaging/ for the build and package tests",
  })),
  ...["demo", "bench", "chaos"].flatMap((from) =>
    [...PRODUCT, "fixtures"].map((to) => ({ from, to, why: "runs the product with the shared fixtures" })),
  ),
  {
    from: "test",
    to: "chaos",
    why: "CI runs the chaos suite's quick form (test/integration/chaos-quick.test.ts)",
  },
  {
    from: "chaos",
    to: "bench",
    only: ["bench/call-latency.ts"],
    why: "the load figures' SSH-per-call baseline is the bench's, measured in the same run",
  },
];

/** Extra edges for *.test.ts files only. */
const TEST_EDGES: readonly Edge[] = [
  ...[...PRODUCT, "scripts"].flatMap((from) => [
    { from, to: "test", why: "test-only helpers (stream contract, duplex pairs, gpg listings)" },
    { from, to: "fixtures", why: "pty pairs and process helpers" },
  ]),
  { from: "transport", to: "platform", why: "tests are wiring: a real runtime to open a serial line with" },
];

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
    notFiles: ["host/daemon/", "host/relay/", "host/cli/", "host/main.ts"],
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

const GRAPH: Graph = { root: ROOT, folders: FOLDERS, edges: EDGES, testEdges: TEST_EDGES, rules: RULES };
const read = (file: string) => readFileSync(join(ROOT, file), "utf-8");
// The checker's own samples below are strings that look like imports.
const SELF = "test/layering.test.ts";
const ALL = Object.keys(FOLDERS)
  .flatMap((dir) => filesUnder(ROOT, dir))
  .filter((f) => f !== SELF);
const edges = (file: string, src: string) => edgeViolations(GRAPH, file, src);
const rules = (file: string, src: string) => ruleViolations(GRAPH, file, src);

describe("layering: the whole graph (DESIGN.md 'Components and layout')", () => {
  test("every top-level folder with TypeScript in it is placed", () => {
    const tops = readdirSync(ROOT, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !SKIP_DIRS.has(e.name) && !e.name.startsWith("."))
      .map((e) => ({ name: e.name, hasTs: filesUnder(ROOT, e.name).length > 0 }));
    expect(unplacedFolders(tops, FOLDERS)).toEqual([]);
  });

  test("every import between folders is a listed edge", () => {
    expect(ALL.length).toBeGreaterThan(300);
    expect(ALL.flatMap((f) => edges(f, read(f)))).toEqual([]);
  });

  test("the folder graph has no cycle (so none between platform/ and transport/)", () => {
    expect(findCycle(EDGES)).toBeNull();
    expect(EDGES.some((e) => e.from === "transport" && e.to === "platform")).toBe(false);
  });

  test("host/ by process and agent/ by concern keep to their finer rules", () => {
    const files = ALL.filter((f) => f.startsWith("host/") || f.startsWith("agent/"));
    expect(files.flatMap((f) => rules(f, read(f)))).toEqual([]);
  });

  test("the relay's and the config contract's import closures stay small", () => {
    const reached = CLOSURES.flatMap((c) =>
      [...closureOf(ROOT, c.entry, read)]
        .filter((f) => c.never.some((n) => f.startsWith(n)))
        .map((f) => `${c.entry} reaches ${f} (${c.why})`),
    );
    expect(reached).toEqual([]);
  });

  test("demo/, bench/ and chaos/ name no path in test/", () => {
    const files = ALL.filter(
      (f) => f.startsWith("demo/") || f.startsWith("bench/") || f.startsWith("chaos/"),
    );
    expect(files.length).toBeGreaterThan(3);
    expect(files.flatMap((f) => testPathViolations(f, read(f)))).toEqual([]);
  });

  test("core/ imports only core/ and @noble/*, and uses no Bun/Node globals", () => {
    const files = ALL.filter((f) => f.startsWith("core/") && !isTest(f));
    expect(files.length).toBeGreaterThan(10);
    expect(files.flatMap((f) => coreViolations(ROOT, f, read(f)))).toEqual([]);
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
  const found = coreViolations(ROOT, "core/session/sample.ts", sample);

  test("core: finds each kind of violation with its line", () => {
    const lines = found.map((v) => Number(v.split(":")[1])).sort((a, b) => a - b);
    expect(lines).toEqual([2, 5, 6, 8, 10, 11, 11, 13, 13, 13]);
    expect(found.join("\n")).toContain("core/session/sample.ts:5: imports node:fs");
  });

  test("core: ignores comments, property names and allowed imports", () => {
    for (const line of [1, 7, 9, 12]) expect(found.some((v) => v.includes(`sample.ts:${line}:`))).toBe(false);
  });

  test("edges: an import no edge allows, with file:line and the missing edge", () => {
    expect(edges("transport/tcp.ts", 'import { x } from "../host/daemon/daemon.ts";')).toEqual([
      "transport/tcp.ts:1: imports ../host/daemon/daemon.ts (no edge transport/ -> host/daemon/daemon.ts)",
    ]);
    expect(edges("transport/serial.ts", '\nimport { platform } from "../platform/index.ts";')).toEqual([
      "transport/serial.ts:2: imports ../platform/index.ts (no edge transport/ -> platform/index.ts)",
    ]);
    expect(edges("platform/bun.ts", 'import { x } from "../core/errors.ts";')).toEqual([]);
    expect(edges("transport/serial.test.ts", 'import { platform } from "../platform/index.ts";')).toEqual([]);
  });

  test("edges: `only` limits an edge to the listed files", () => {
    expect(edges("platform/node.ts", 'import type { ByteStream } from "../transport/transport.ts";')).toEqual(
      [],
    );
    expect(edges("platform/node.ts", 'import { openSerial } from "../transport/serial.ts";')).toHaveLength(1);
    expect(edges("images/cloud.ts", 'import { parseConfig } from "../agent/config.ts";')).toEqual([]);
    expect(edges("images/cloud.ts", 'import { x } from "../agent/link/listen.ts";')).toEqual([
      "images/cloud.ts:1: imports ../agent/link/listen.ts (no edge images/ -> agent/link/listen.ts)",
    ]);
  });

  test("edges: demo/ and bench/ reach fixtures/, never test/, tests included", () => {
    expect(edges("bench/run.ts", 'import { ptyPair } from "../fixtures/pty.ts";')).toEqual([]);
    expect(edges("demo/zone-demo.ts", 'import { ptyPair } from "../test/helpers/pty.ts";')).toHaveLength(1);
    expect(edges("bench/bench.test.ts", 'import { x } from "../test/helpers/duplex-pair.ts";')).toHaveLength(
      1,
    );
    expect(edges("core/x.test.ts", 'import { x } from "../test/helpers/duplex-pair.ts";')).toEqual([]);
    expect(edges("fixtures/pty.ts", 'import { x } from "../test/helpers/duplex-pair.ts";')).toHaveLength(1);
    expect(edges("bench/run.ts", 'import { x } from "../../elsewhere/x.ts";')).toEqual([
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
    expect(rules("host/relay/relay.ts", 'import { Daemon } from "../daemon/daemon.ts";')).toEqual([
      "host/relay/relay.ts:1: imports ../daemon/daemon.ts (the relay starts once per call: its start-up must stay small)",
    ]);
    expect(rules("host/paths.ts", 'import { x } from "./cli/common.ts";')).toHaveLength(1);
    expect(rules("host/cli/list.ts", 'import { loadRegistry } from "../daemon/registry.ts";')).toEqual([]);
    expect(rules("host/relay/relay.test.ts", 'import { x } from "../daemon/daemon.ts";')).toEqual([]);
    expect(rules("agent/link/sessions.ts", 'import { x } from "../cli/cli.ts";')).toHaveLength(1);
    expect(rules("agent/services/gpg/keysetup.ts", 'import { x } from "../../cli/cli.ts";')).toEqual([]);
  });

  test("folders: an unplaced folder with TypeScript fails, one without does not", () => {
    const tops = [
      { name: "core", hasTs: true },
      { name: "salt", hasTs: false },
      { name: "tools", hasTs: true },
    ];
    expect(unplacedFolders(tops, FOLDERS)).toEqual(["tools"]);
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
