/** The agent's version: `--version`, and the string sent in the handshake payload ([0-9A-Za-z.+_-], at most 32). */
export const VERSION = "0.1.0";
export const AGENT_VERSION = VERSION;
