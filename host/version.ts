/** The host's version: `qubes-air version`, and the string sent in the handshake payload. */
export const VERSION = "0.1.0";
export const HOST_VERSION = `qubes-air-host/${VERSION}`;
