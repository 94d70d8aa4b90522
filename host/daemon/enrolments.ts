/**
 * Pending enrolments: devices whose image was built in sys-remote and that the daemon pairs by
 * itself when they first appear (docs/enrolment.md). One JSON file in the state dir, written
 * only by the daemon, atomically, mode 0600 (it holds one-time tokens):
 *
 *   {"version": 1,
 *    "pending": [{
 *      "name": "pi-gpg",                  the qube name the person gave to image build (never the device's word)
 *      "zone": "usb", "label": "gray",
 *      "token": "<64 hex>",               the one-time pairing token written into the image
 *      "identity": {"usb": {"vendor": "qubes-air", "product": "qubes-air Raspberry Pi 4", "serial": "QA-..."}}
 *                | {"mac": "aa:..", "tcp": "10.0.0.1:7441"}     USB network gadget: its MAC, then TCP
 *                | {"tcp": "203.0.113.7:7441"},                  a cloud VM at a known address
 *      "createdAt": "...", "expiresAt": "..."}],
 *    "spent": ["<sha256 hex of a token>", ...]}   tokens used or withdrawn: never accepted again
 *
 * Must never: accept a token twice (pending or spent), keep an expired enrolment usable, match a
 * device by anything it could choose freely but the recorded identity, or print a token.
 */
import { createHash } from "node:crypto";
import { ConfigError } from "../../core/errors.ts";
import { isQubeLabel, isQubeName, QUBE_LABELS } from "../../core/qrexec/names.ts";
import { platform } from "../../platform/index.ts";
import { jsonObject, jsonString, jsonTime } from "./json-fields.ts";
import { isUsbSerial, isZone, normalizeMac, parseTcpAddress } from "./registry.ts";

export const ENROLMENTS_VERSION = 1;
/** At most this many pending enrolments: each is a device the person is setting up by hand. */
export const MAX_PENDING = 64;
/** Spent token hashes kept (oldest dropped first): far more than anyone enrols. */
export const MAX_SPENT = 4096;
/** An enrolment lives at most 90 days: a forgotten image must not stay a key to sys-remote. */
export const MAX_TTL_SECONDS = 90 * 24 * 3600;
const MAX_BYTES = 1024 * 1024;

/** Qubes' labels (core/qrexec/names.ts). */
export const LABELS = QUBE_LABELS;

export type Identity =
  | { readonly usb: { readonly vendor: string; readonly product: string; readonly serial: string } }
  | { readonly mac: string; readonly tcp: string }
  | { readonly tcp: string };

export interface Enrolment {
  readonly name: string;
  readonly zone: string;
  readonly label: string;
  readonly token: Uint8Array;
  readonly identity: Identity;
  readonly createdAt: string;
  readonly expiresAt: string;
}

export interface Enrolments {
  readonly pending: readonly Enrolment[];
  readonly spent: readonly string[];
}

/** USB string descriptors as udev shows them in by-id names: printable ASCII, bounded. */
const USB_STRING = /^[\x21-\x7e]([\x20-\x7e]{0,62}[\x21-\x7e])?$/;
const HEX64 = /^[0-9a-f]{64}$/;

export function tokenHash(token: Uint8Array): string {
  return createHash("sha256").update("qubes-air enrolment token\0").update(token).digest("hex");
}

export const isLabel = isQubeLabel;

/** Checks an identity (from the file or the control socket); ConfigError naming `where`. */
export function parseIdentity(value: unknown, where: string): Identity {
  const o = jsonObject(value, where, ["usb", "mac", "tcp"]);
  if (o.usb !== undefined) {
    if (Object.keys(o).length !== 1) throw new ConfigError(`${where}: "usb" stands alone`);
    const u = jsonObject(o.usb, `${where}.usb`, ["vendor", "product", "serial"]);
    const vendor = jsonString(u, "vendor", `${where}.usb`);
    const product = jsonString(u, "product", `${where}.usb`);
    const serial = jsonString(u, "serial", `${where}.usb`);
    if (!USB_STRING.test(vendor) || !USB_STRING.test(product))
      throw new ConfigError(`${where}.usb: vendor and product must be 1-64 printable ASCII characters`);
    if (!isUsbSerial(serial))
      throw new ConfigError(`${where}.usb: "serial" must be 1-64 of A-Z a-z 0-9 _ . : -`);
    return { usb: { vendor, product, serial } };
  }
  const tcp = jsonString(o, "tcp", where);
  if (!parseTcpAddress(tcp)) throw new ConfigError(`${where}: "tcp" must be HOST:PORT`);
  if (o.mac === undefined) return { tcp };
  const mac = normalizeMac(jsonString(o, "mac", where));
  if (mac === null) throw new ConfigError(`${where}: "mac" must look like aa:bb:cc:dd:ee:ff`);
  return { mac, tcp };
}

export function parseEnrolments(text: string, source: string): Enrolments {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError(`${source} is not valid JSON: remove it (pending enrolments are then lost)`);
  }
  const top = jsonObject(value, source, ["version", "pending", "spent"]);
  if (top.version !== ENROLMENTS_VERSION)
    throw new ConfigError(`${source}: "version" must be ${ENROLMENTS_VERSION}`);
  if (!Array.isArray(top.pending) || !Array.isArray(top.spent))
    throw new ConfigError(`${source}: "pending" and "spent" must be arrays`);
  const spent = top.spent.map((h, i) => {
    if (typeof h !== "string" || !HEX64.test(h))
      throw new ConfigError(`${source}: spent[${i}] is not a hash`);
    return h;
  });
  const names = new Set<string>();
  const pending = top.pending.map((p, i) => {
    const e = parseEnrolment(p, `${source}: pending[${i}]`);
    if (names.has(e.name)) throw new ConfigError(`${source}: "${e.name}" is pending twice`);
    names.add(e.name);
    return e;
  });
  return { pending, spent };
}

function parseEnrolment(value: unknown, where: string): Enrolment {
  const o = jsonObject(value, where, [
    "name",
    "zone",
    "label",
    "token",
    "identity",
    "createdAt",
    "expiresAt",
  ]);
  const name = jsonString(o, "name", where);
  if (!isQubeName(name)) throw new ConfigError(`${where}: "name" must be a qube name`);
  const zone = jsonString(o, "zone", where);
  if (!isZone(zone)) throw new ConfigError(`${where}: "zone" must be 1-32 of a-z 0-9 _ . -`);
  const label = jsonString(o, "label", where);
  if (!isLabel(label)) throw new ConfigError(`${where}: "label" must be one of ${LABELS.join(", ")}`);
  const token = jsonString(o, "token", where);
  if (!HEX64.test(token)) throw new ConfigError(`${where}: "token" must be 64 lower-case hex digits`);
  return {
    name,
    zone,
    label,
    token: Uint8Array.from(Buffer.from(token, "hex")),
    identity: parseIdentity(o.identity, `${where}: "identity"`),
    createdAt: jsonTime(o, "createdAt", where),
    expiresAt: jsonTime(o, "expiresAt", where),
  };
}

export function formatEnrolments(e: Enrolments): string {
  const pending = e.pending.map((p) => ({ ...p, token: Buffer.from(p.token).toString("hex") }));
  return `${JSON.stringify({ version: ENROLMENTS_VERSION, pending, spent: e.spent }, null, 2)}\n`;
}

/** Loads the file; missing = none. Refused like the registry when others could write it. */
export async function loadEnrolments(path: string): Promise<Enrolments> {
  const st = await platform.stat(path);
  if (!st) return { pending: [], spent: [] };
  if (!st.isFile || st.size > MAX_BYTES)
    throw new ConfigError(`${path} is not an enrolments file: move it away`);
  const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
  if (st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new ConfigError(
      `${path} holds pairing tokens but others can read or own it: chmod 600 ${path} (and check who changed it)`,
    );
  }
  return parseEnrolments(new TextDecoder().decode(await platform.readFile(path)), path);
}

export function saveEnrolments(path: string, e: Enrolments): Promise<void> {
  return platform.writeFileAtomic(path, formatEnrolments(e), 0o600);
}

/**
 * The by-id name udev gives a USB serial device: `usb-<vendor>_<product>_<serial>-if<NN>`, each
 * string trimmed, each run of blanks made one `_` (udev_replace_whitespace), then characters
 * outside udev's safe set made `_` (udev_replace_chars).
 */
export function udevField(text: string): string {
  return text
    .trim()
    .replace(/\s+/g, "_")
    .replace(/[^0-9A-Za-z#+\-.:=@_]/g, "_");
}

export type SerialMatch = "match" | "other-identity" | "none";

/**
 * Does the by-id entry `name` (chosen by the device's descriptors) belong to this enrolment? The
 * serial must stand as a whole field; if it does but vendor or product differ, the device
 * presents another identity than the image was built with: refused, never paired.
 */
export function matchSerialEntry(name: string, identity: Identity): SerialMatch {
  if (!("usb" in identity)) return "none";
  const { vendor, product, serial } = identity.usb;
  const m = /^(.*?)(-if[0-9a-f]{2}(-port\d+)?)?$/.exec(name)!;
  const head = m[1]!;
  if (!head.endsWith(`_${serial}`)) return "none";
  const expected = `usb-${udevField(vendor)}_${udevField(product)}`;
  return m[2] !== undefined && head.slice(0, -(serial.length + 1)) === expected ? "match" : "other-identity";
}

/** Seconds left before `e` expires (negative once expired). */
export function secondsLeft(e: Enrolment, nowMs = Date.now()): number {
  return (Date.parse(e.expiresAt) - nowMs) / 1000;
}
