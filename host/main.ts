/**
 * `qubes-air`: the sys-remote CLI's entry point (docs/host.md). The commands are in
 * host/cli/program.ts; exit statuses in core/cli/exit-codes.ts.
 */
import { runMain } from "../platform/cli/process.ts";
import { HOST_PROGRAM } from "./cli/program.ts";

if (import.meta.main) await runMain(HOST_PROGRAM);
