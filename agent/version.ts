/** The agent's version: `--version`, and the string sent in the handshake payload ([0-9A-Za-z.+_-], at most 32). */
export const VERSION = "0.1.0";
export const AGENT_VERSION = VERSION;

// Set by `bun run build` (scripts/build.ts: --define QUBES_AIR_TARGET=...); "source" when run from a checkout.
declare const QUBES_AIR_TARGET: string | undefined;
export const TARGET = typeof QUBES_AIR_TARGET === "string" ? QUBES_AIR_TARGET : "source";
