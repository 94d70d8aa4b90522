/** The host's version: `qubes-air version`, and the version sent in the handshake payload. */
export const VERSION = "0.1.0";
/** The handshake carries it as [0-9A-Za-z.+_-]{1,32} (core/session/messages.ts). */
export const HOST_VERSION = VERSION;

// Set by `bun run build` (scripts/build.ts: --define QUBES_AIR_TARGET=...); "source" when run from a checkout.
declare const QUBES_AIR_TARGET: string | undefined;
export const TARGET = typeof QUBES_AIR_TARGET === "string" ? QUBES_AIR_TARGET : "source";
