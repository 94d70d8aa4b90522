/**
 * `bun run chaos [--quick] [--runs N] [--seed S] [--only REGEX] [--no-load] [--json]`: the
 * standing fault suite (chaos/faults.ts, chaos/suite.ts) and the load figures (chaos/load.ts)
 * against real agent and daemon processes. Prints the seed first (a run is replayed with
 * --seed), progress lines on stderr, then the Markdown tables (for the README) or JSON.
 * Exit 1 when a fault that is not known-failing failed, or a load bound was exceeded.
 * Must never: leave a process behind (the harness's cleanup() runs on every exit path).
 */
import { parseArgs } from "node:util";
import { cleanup } from "../fixtures/qubes-stubs/harness.ts";
import { type LoadFigures, loadTable, measureLoad } from "./load.ts";
import { markdownTable, runSuite } from "./suite.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean" },
    runs: { type: "string" },
    seed: { type: "string" },
    only: { type: "string" },
    "no-load": { type: "boolean" },
    "no-faults": { type: "boolean" },
    json: { type: "boolean" },
  },
});

const quick = values.quick === true;
const runs = Number(values.runs ?? (quick ? 1 : 3));
const seed = values.seed === undefined ? Math.floor(Date.now() % 1e9) : Number(values.seed);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
  console.error("chaos: --runs is a positive integer, --seed an integer");
  process.exit(2);
}
const log = (line: string) => process.stderr.write(`${line}\n`);
log(`chaos: seed ${seed} (replay with --seed ${seed}), ${runs} run(s) per fault${quick ? ", quick" : ""}`);

process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

let failed = false;
try {
  const rows = values["no-faults"]
    ? []
    : await runSuite({ runs, quick, seed, only: values.only ? new RegExp(values.only) : undefined, log });
  failed = rows.some((r) => r.verdict === "FAIL");
  if (!values.json && rows.length)
    console.log(`## Faults (seed ${seed}, ${runs} run(s) each)\n\n${markdownTable(rows)}\n`);
  let load: LoadFigures | null = null;
  if (!values["no-load"] && !values.only) {
    load = await measureLoad({ quick, log });
    failed ||= !load.withinBounds;
    if (!values.json) console.log(`## Load\n\n${loadTable(load)}\n`);
  }
  if (values.json) console.log(JSON.stringify({ seed, runs, quick, faults: rows, load }, null, 2));
} finally {
  cleanup();
}
process.exit(failed ? 1 : 0);
