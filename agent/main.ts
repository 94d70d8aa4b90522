/**
 * qubes-air-agent: the device runtime's entry point (docs/agent.md). The commands are in
 * agent/cli/program.ts; exit statuses in core/cli/exit-codes.ts.
 * Runs under Bun and as a Node 18/20 bundle: nothing here touches `Bun.*` (and Node has no
 * import.meta.main, so this file only runs the program; tests import agent/cli/program.ts).
 */
import "../platform/webcrypto-global.ts"; // first: Node 18 lacks a global crypto for @noble
import { runMain } from "../platform/cli/process.ts";
import { AGENT_PROGRAM } from "./cli/program.ts";

await runMain(AGENT_PROGRAM);
