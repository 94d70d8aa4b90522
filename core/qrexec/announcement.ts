/**
 * What the device tells sys-remote about its confirmations (the `qubesair.Announce` call, device
 * to host): a prompt is waiting, or it was approved, denied, timed out or withdrawn as a
 * conflict. Every approval is announced, so a press that approved another qube's request shows
 * in Qubes (docs/threat-model.md, "a stolen press"). One strict CBOR map per call:
 *
 *   {v: 2, event, id, code, client, service, operation, key, detail}
 *
 * `code` is the prompt's short request code (REQUEST_CODE_LENGTH letters and digits from
 * REQUEST_CODE_ALPHABET, random per prompt): the device shows it with the prompt, and every line
 * in Qubes about that prompt (journal, notification, the caller's stderr) carries the same code, so
 * a person can tell which request a press answers. Version 1 had no code and is refused.
 *
 * The host decodes it as untrusted device bytes: known event names only, qrexec names checked as
 * qrexec checks them, free text (key, detail, operation) limited in length and reduced to
 * printable ASCII before anyone sees it.
 * Must never: let a device put control characters or unbounded text into sys-remote's journal.
 */
import { ProtocolError } from "../errors.ts";
import { type CborMap, type CborValue, decodeCbor, encodeCbor } from "../wire/cbor.ts";
import { isQubeName, isServiceName } from "./names.ts";

export const ANNOUNCED_EVENTS = ["waiting", "approved", "denied", "timeout", "conflict"] as const;
export type AnnouncedEvent = (typeof ANNOUNCED_EVENTS)[number];

export interface Announcement {
  readonly event: AnnouncedEvent;
  /** The device's prompt number, so a journal line and the device's own log can be matched. */
  readonly id: number;
  /** The prompt's request code, as the device shows it (isRequestCode). */
  readonly code: string;
  /** The calling qube as sys-remote named it to the device. */
  readonly client: string;
  readonly service: string;
  /** PKSIGN, sign, call, pair ... */
  readonly operation: string;
  /** The device's description of the key, or "" when none. */
  readonly key: string;
  /** "sha256 01234567...89ABCDEF" for a signature, "arg=..." for a call, or "". */
  readonly detail: string;
}

/** Free text fields: a UID and fingerprint fit; a screenful does not. */
export const ANNOUNCEMENT_TEXT_MAX = 256;
/** The whole message: seven fields of at most that much, with room to spare. */
export const ANNOUNCEMENT_MAX_BYTES = 4096;
const KEYS = ["client", "code", "detail", "event", "id", "key", "operation", "service", "v"];

/**
 * Request codes: no 0/O, 1/I/L, 5/S or 8/B, so a code read off a small screen is read right.
 * 4 characters of 27 are 531441 codes: two prompts a person sees close together differ.
 */
export const REQUEST_CODE_ALPHABET = "234679ACDEFGHJKMNPQRTUVWXYZ";
export const REQUEST_CODE_LENGTH = 4;
const REQUEST_CODE_RE = new RegExp(`^[${REQUEST_CODE_ALPHABET}]{${REQUEST_CODE_LENGTH}}$`);

export function isRequestCode(s: string): boolean {
  return REQUEST_CODE_RE.test(s);
}

/** A request code from REQUEST_CODE_LENGTH random bytes (the caller draws them). */
export function requestCodeOf(random: Uint8Array): string {
  if (random.length !== REQUEST_CODE_LENGTH) throw new Error("BUG: request code needs 4 random bytes");
  // 256 is not a multiple of 27: the bias (at most 1 in 256 per character) costs nothing here,
  // the code tells prompts apart and guards nothing.
  return [...random].map((b) => REQUEST_CODE_ALPHABET[b % REQUEST_CODE_ALPHABET.length]).join("");
}

export function encodeAnnouncement(a: Announcement): Uint8Array {
  return encodeCbor({
    v: 2,
    event: a.event,
    id: a.id,
    code: a.code,
    client: a.client,
    service: a.service,
    operation: printable(a.operation),
    key: printable(a.key),
    detail: printable(a.detail),
  });
}

export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  if (bytes.length > ANNOUNCEMENT_MAX_BYTES) throw new ProtocolError("frame-too-large", "announcement");
  let value: CborValue;
  try {
    value = decodeCbor(bytes);
  } catch {
    throw new ProtocolError("schema", "announcement is not strict CBOR");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array)
    throw new ProtocolError("schema", "announcement is not a map");
  const m = value as CborMap;
  if (Object.keys(m).sort().join(",") !== KEYS.join(",") || m.v !== 2)
    throw new ProtocolError("schema", "announcement fields");
  const event = ANNOUNCED_EVENTS.find((e) => e === m.event);
  if (event === undefined) throw new ProtocolError("schema", "announcement event");
  if (typeof m.id !== "number" || !Number.isSafeInteger(m.id) || m.id < 0)
    throw new ProtocolError("schema", "announcement id");
  const code = text(m.code);
  if (!isRequestCode(code)) throw new ProtocolError("schema", "announcement code");
  const client = text(m.client);
  const service = text(m.service);
  if (!isQubeName(client) || !isServiceName(service)) throw new ProtocolError("schema", "announcement names");
  return {
    event,
    id: m.id,
    code,
    client,
    service,
    operation: printable(text(m.operation)),
    key: printable(text(m.key)),
    detail: printable(text(m.detail)),
  };
}

/** What a person reads for each event: a timeout is said as "expired". */
export const EVENT_WORDS: Readonly<Record<AnnouncedEvent, string>> = {
  waiting: "waiting for a press",
  approved: "approved",
  denied: "denied",
  timeout: "expired",
  conflict: "refused (conflict)",
};

/** The request in words: client, operation, service, key, digest or argument. */
export function describeAnnounced(a: Announcement): string {
  const what = a.key && a.key !== "-" ? ` with ${a.key}` : "";
  const detail = a.detail ? ` ${a.detail}` : "";
  return `${a.client} asks for ${a.operation} (${a.service})${what}${detail}`;
}

/** The journal line sys-remote writes for a device's announcement (device = the RemoteVM). */
export function formatAnnouncement(device: string, a: Announcement): string {
  return `${device}: ${EVENT_WORDS[a.event]} [${a.code}] #${a.id}: ${describeAnnounced(a)}`;
}

function text(v: CborValue | undefined): string {
  if (typeof v !== "string" || v.length > ANNOUNCEMENT_TEXT_MAX)
    throw new ProtocolError("schema", "announcement text");
  return v;
}

/** Printable ASCII only; anything else becomes "_" (a UID's accents are not worth a journal escape). */
function printable(s: string): string {
  return s.slice(0, ANNOUNCEMENT_TEXT_MAX).replace(/[^\x20-\x7e]/g, "_");
}
