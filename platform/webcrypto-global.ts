/**
 * Node 18 (Debian bookworm, the USB Armory's Node) has no global `crypto`, and @noble reads
 * `globalThis.crypto.getRandomValues` for key generation. Imported first by the agent's entry
 * point, this installs node:crypto's Web Crypto there. Bun and Node >= 20 already have it.
 * Must never: replace an existing global crypto.
 */
import { webcrypto } from "node:crypto";

const g = globalThis as { crypto?: unknown };
if (g.crypto === undefined) g.crypto = webcrypto;
