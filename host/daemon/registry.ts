/**
 * The registry of remote qubes: one JSON file in the state dir, owned by the daemon and written
 * atomically with mode 0600 (it pins the agents' keys: whoever can change it can impersonate a
 * device, so a file writable by group or others, or owned by someone else, is refused).
 *
 *   {"version": 1, "remotes": [{
 *     "name": "pi-gpg",                 RemoteVM name in dom0 (= its remote_name), isQubeName
 *     "zone": "usb",                    free label: usb, lan, cloud ...
 *     "transport": {"tcp": "HOST:PORT"} | {"serial": {"byId": "usb-...-if00"}} | {"serial": {"path": "/dev/..."}},
 *     "usbSerial": "E661...",           optional: hotplug match on the by-id name
 *     "mac": "aa:bb:cc:dd:ee:ff",       optional: hotplug match on a network interface
 *     "agentKey": "qa-pub:<64 hex>",    the agent's pinned static key
 *     "pairing": "<32 hex>",            the pairing's id, sent in every IK message 1
 *                                       (core/session/pairing-id.ts); absent for a pairing made
 *                                       before pairing ids (LEGACY_PAIRING_ID is sent then)
 *     "pairedAt": "2026-01-02T03:04:05.678Z", "lastSeen": "..." | null }]}
 *
 * Parsing is strict: unknown fields, wrong types and duplicate names are ConfigErrors that say
 * which entry and field is wrong. In memory agentKey is the parsed key (StaticPublicKey), so the
 * handshake gets it without parsing text again; only the file holds the text form.
 * Must never: print a key, or accept a name qrexec would refuse.
 */
import { isIP } from "node:net";
import { isAbsolute, normalize } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import { isQubeName } from "../../core/qrexec/names.ts";
import { formatPublicKey, parsePublicKey, type StaticPublicKey } from "../../core/session/key-text.ts";
import { formatPairingId, parsePairingId } from "../../core/session/pairing-id.ts";
import { platform } from "../../platform/index.ts";
import { jsonObject, jsonString, jsonTime } from "./json-fields.ts";

export const REGISTRY_VERSION = 1;
const REGISTRY_MAX_BYTES = 1024 * 1024;

export type TransportSpec =
  | { readonly tcp: string }
  | { readonly serial: { readonly byId: string } | { readonly path: string } };

export interface RemoteEntry {
  readonly name: string;
  readonly zone: string;
  readonly transport: TransportSpec;
  readonly usbSerial?: string;
  readonly mac?: string;
  /** The agent's pinned static key; `qa-pub:<hex>` in the file. */
  readonly agentKey: StaticPublicKey;
  /** The pairing's id (hex in the file); absent for a pairing made before pairing ids. */
  readonly pairingId?: Uint8Array;
  readonly pairedAt: string;
  readonly lastSeen: string | null;
}

export interface Registry {
  readonly remotes: readonly RemoteEntry[];
}

const ZONE = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
const BY_ID = /^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,254}$/;
const USB_SERIAL = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const HOSTNAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isZone(zone: string): boolean {
  return ZONE.test(zone);
}

/** `HOST:PORT` or `[V6]:PORT` -> parts; null when malformed. */
export function parseTcpAddress(text: string): { host: string; port: number } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  const bracketed = m[1]!.startsWith("[");
  const host = bracketed ? m[1]!.slice(1, -1) : m[1]!;
  if (bracketed ? isIP(host) !== 6 : !HOSTNAME.test(host)) return null;
  return { host, port };
}

export function isByIdName(name: string): boolean {
  return BY_ID.test(name);
}

export function isSerialPath(path: string): boolean {
  return isAbsolute(path) && !path.includes("\0") && normalize(path) === path && path.length < 4096;
}

export function normalizeMac(mac: string): string | null {
  const m = mac.toLowerCase();
  return MAC.test(m) ? m : null;
}

export function isUsbSerial(serial: string): boolean {
  return USB_SERIAL.test(serial);
}

/** "tcp HOST:PORT", "serial BY-ID" or "serial PATH", for tables and logs. */
export function describeTransport(t: TransportSpec): string {
  if ("tcp" in t) return `tcp ${t.tcp}`;
  return "byId" in t.serial ? `serial ${t.serial.byId}` : `serial ${t.serial.path}`;
}

export function parseRegistry(text: string, source: string): Registry {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError(
      `${source} is not valid JSON: restore it from a backup, or remove it and pair again`,
    );
  }
  const top = jsonObject(value, source, ["version", "remotes"]);
  if (top.version !== REGISTRY_VERSION) {
    throw new ConfigError(
      `${source}: "version" must be ${REGISTRY_VERSION} (this qubes-air reads only that format)`,
    );
  }
  if (!Array.isArray(top.remotes)) throw new ConfigError(`${source}: "remotes" must be an array`);
  const seen = new Set<string>();
  const remotes = top.remotes.map((r, i) => {
    const entry = parseEntry(r, `${source}: remotes[${i}]`);
    if (seen.has(entry.name)) throw new ConfigError(`${source}: the remote "${entry.name}" appears twice`);
    seen.add(entry.name);
    return entry;
  });
  return { remotes };
}

const ENTRY_FIELDS = [
  "name",
  "zone",
  "transport",
  "usbSerial",
  "mac",
  "agentKey",
  "pairing",
  "pairedAt",
  "lastSeen",
];

function parseEntry(value: unknown, where: string): RemoteEntry {
  const o = jsonObject(value, where, ENTRY_FIELDS);
  const name = jsonString(o, "name", where);
  if (!isQubeName(name)) {
    throw new ConfigError(
      `${where}: "name" must be a qube name (a letter, then letters, digits, _ . -; at most 31)`,
    );
  }
  const at = `${where} ("${name}")`;
  const zone = jsonString(o, "zone", at);
  if (!isZone(zone))
    throw new ConfigError(`${at}: "zone" must be 1-32 of a-z 0-9 _ . - (e.g. usb, lan, cloud)`);
  const transport = parseTransport(o.transport, `${at}: "transport"`);
  const entry: RemoteEntry = {
    name,
    zone,
    transport,
    agentKey: parsePublicKey(jsonString(o, "agentKey", at), `${at}: "agentKey"`),
    pairedAt: jsonTime(o, "pairedAt", at),
    lastSeen: o.lastSeen === null ? null : jsonTime(o, "lastSeen", at),
  };
  const extra: { usbSerial?: string; mac?: string; pairingId?: Uint8Array } = {};
  if (o.pairing !== undefined) {
    const id = parsePairingId(jsonString(o, "pairing", at));
    if (!id) throw new ConfigError(`${at}: "pairing" must be 32 lowercase hex digits (or pair again)`);
    extra.pairingId = id;
  }
  if (o.usbSerial !== undefined) {
    const s = jsonString(o, "usbSerial", at);
    if (!isUsbSerial(s)) throw new ConfigError(`${at}: "usbSerial" must be 1-64 of A-Z a-z 0-9 _ . : -`);
    extra.usbSerial = s;
  }
  if (o.mac !== undefined) {
    const mac = normalizeMac(jsonString(o, "mac", at));
    if (!mac) throw new ConfigError(`${at}: "mac" must look like aa:bb:cc:dd:ee:ff`);
    extra.mac = mac;
  }
  return { ...entry, ...extra };
}

export function parseTransport(value: unknown, where: string): TransportSpec {
  const o = jsonObject(value, where, ["tcp", "serial"]);
  const kinds = Object.keys(o);
  if (kinds.length !== 1) throw new ConfigError(`${where} must have exactly one of "tcp" or "serial"`);
  if (kinds[0] === "tcp") {
    const tcp = jsonString(o, "tcp", where);
    if (!parseTcpAddress(tcp)) throw new ConfigError(`${where}: "tcp" must be HOST:PORT (or [IPv6]:PORT)`);
    return { tcp };
  }
  const s = jsonObject(o.serial, `${where}.serial`, ["byId", "path"]);
  const keys = Object.keys(s);
  if (keys.length !== 1) throw new ConfigError(`${where}.serial must have exactly one of "byId" or "path"`);
  if (keys[0] === "byId") {
    const byId = jsonString(s, "byId", `${where}.serial`);
    if (!isByIdName(byId)) {
      throw new ConfigError(
        `${where}.serial: "byId" must be a name in /dev/serial/by-id/ (no "/"), e.g. usb-...-if00`,
      );
    }
    return { serial: { byId } };
  }
  const path = jsonString(s, "path", `${where}.serial`);
  if (!isSerialPath(path))
    throw new ConfigError(`${where}.serial: "path" must be an absolute, normalised path`);
  return { serial: { path } };
}

export function formatRegistry(registry: Registry): string {
  const remotes = registry.remotes.map(({ pairingId, ...r }) => ({
    ...r,
    agentKey: formatPublicKey(r.agentKey),
    ...(pairingId ? { pairing: formatPairingId(pairingId) } : {}),
  }));
  return `${JSON.stringify({ version: REGISTRY_VERSION, remotes }, null, 2)}\n`;
}

/** Loads the registry; a missing file is an empty registry. */
export async function loadRegistry(path: string): Promise<Registry> {
  const st = await platform.stat(path);
  if (!st) return { remotes: [] };
  if (!st.isFile) throw new ConfigError(`${path} is not a regular file: move it away and pair again`);
  if (st.size > REGISTRY_MAX_BYTES)
    throw new ConfigError(`${path} is larger than 1 MiB: it is not a registry`);
  const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
  if (st.uid !== uid)
    throw new ConfigError(`${path} belongs to another user: it must be owned by the daemon's user`);
  if ((st.mode & 0o022) !== 0) {
    throw new ConfigError(
      `${path} is writable by group or others, so its pinned keys cannot be trusted: chmod 600 ${path}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(await platform.readFile(path));
  } catch {
    throw new ConfigError(`${path} is not UTF-8 text: restore it from a backup, or remove it and pair again`);
  }
  return parseRegistry(text, path);
}

export async function saveRegistry(path: string, registry: Registry): Promise<void> {
  await platform.writeFileAtomic(path, formatRegistry(registry), 0o600);
}

export function nowIso(ms = Date.now()): string {
  return new Date(ms).toISOString();
}
