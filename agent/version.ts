/** The agent's version: `--version`, and the string sent in the handshake payload. */
export const VERSION = "0.1.0";
export const AGENT_VERSION = `qubes-air-agent/${VERSION}`;
