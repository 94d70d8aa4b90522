/**
 * The device's own view of its secret keys, parsed from
 * `gpg --with-colons --fixed-list-mode --with-keygrip --list-secret-keys` (the device's gpg on
 * the device's keyring, never the client's). It answers "which key is this keygrip", gives the
 * UID/fingerprint text that the device shows and writes into SETKEYDESC, and says whether a
 * keygrip belongs to a primary key (refused by default: only subkeys are served).
 * Must never: take a description from the client.
 */

export interface KeyEntry {
  readonly keygrip: string;
  /** This key's (sub)key fingerprint. */
  readonly fingerprint: string;
  /** The primary key's fingerprint (equal to `fingerprint` for a primary). */
  readonly primaryFingerprint: string;
  readonly isPrimary: boolean;
  /** The primary key's first user ID, unescaped; null if it has none. */
  readonly uid: string | null;
  /** gpg's capability letters of this (sub)key, e.g. "s", "e", "cESC". */
  readonly capabilities: string;
  /** False for a stub (`#`, secret not on this device) or a key on a card (`>`). */
  readonly secretHere: boolean;
  /** gpg's validity letter (u, f, -, r revoked, e expired, ...). */
  readonly validity: string;
}

export interface KeyringIndex {
  readonly byGrip: ReadonlyMap<string, KeyEntry>;
  /** Primary keys in listing order, each with its subkeys. */
  readonly primaries: readonly { key: KeyEntry; subkeys: readonly KeyEntry[] }[];
}

export const EMPTY_KEYRING: KeyringIndex = { byGrip: new Map(), primaries: [] };

interface Draft {
  type: "sec" | "ssb";
  validity: string;
  capabilities: string;
  secret: string;
  fingerprint?: string;
  keygrip?: string;
}

/** Undoes gpg's es_write_sanitized escaping in colon listings (\\, \n, ..., \xHH). */
export function colonUnescape(s: string): string {
  const map: Record<string, string> = { "\\": "\\", n: "\n", r: "\r", f: "\f", v: "\v", b: "\b", "0": "\0" };
  return s.replace(/\\(\\|n|r|f|v|b|0|x[0-9a-f]{2})/g, (_m, c: string) =>
    c.length === 3 ? String.fromCharCode(Number.parseInt(c.slice(1), 16)) : map[c]!,
  );
}

export function parseSecretKeyListing(text: string): KeyringIndex {
  const primaries: { key: KeyEntry; subkeys: KeyEntry[] }[] = [];
  const byGrip = new Map<string, KeyEntry>();
  let primary: { draft: Draft; uid: string | null; subs: Draft[] } | null = null;
  let current: Draft | null = null;

  const finishPrimary = () => {
    if (!primary) return;
    const p = primary;
    const pf = p.draft.fingerprint;
    if (pf && p.draft.keygrip) {
      const mk = (d: Draft, isPrimary: boolean): KeyEntry => ({
        keygrip: d.keygrip!,
        fingerprint: d.fingerprint!,
        primaryFingerprint: pf,
        isPrimary,
        uid: p.uid,
        capabilities: d.capabilities,
        secretHere: d.secret === "+" || d.secret === "",
        validity: d.validity,
      });
      const key = mk(p.draft, true);
      const subkeys = p.subs.filter((d) => d.fingerprint && d.keygrip).map((d) => mk(d, false));
      primaries.push({ key, subkeys });
      // A keygrip seen twice (the same key material under two primaries) keeps its first use.
      for (const e of [key, ...subkeys]) if (!byGrip.has(e.keygrip)) byGrip.set(e.keygrip, e);
    }
    primary = null;
    current = null;
  };

  for (const rawLine of text.split("\n")) {
    const f = rawLine.replace(/\r$/, "").split(":");
    const type = f[0];
    if (type === "sec" || type === "ssb") {
      const draft: Draft = {
        type,
        validity: f[1] ?? "",
        capabilities: f[11] ?? "",
        secret: f[14] ?? "",
      };
      if (type === "sec") {
        finishPrimary();
        primary = { draft, uid: null, subs: [] };
      } else if (primary) primary.subs.push(draft);
      current = primary ? draft : null;
    } else if (type === "fpr" && current && !current.fingerprint) {
      current.fingerprint = (f[9] ?? "").toUpperCase();
    } else if (type === "grp" && current && !current.keygrip) {
      current.keygrip = (f[9] ?? "").toUpperCase();
    } else if (type === "uid" && primary && primary.uid === null) {
      primary.uid = colonUnescape(f[9] ?? "");
    } else if (type === "pub" || type === "sub") {
      finishPrimary();
    }
  }
  finishPrimary();
  return { byGrip, primaries };
}

/** Printable text only (control characters become "."), at most `max` characters. */
export function displaySafe(s: string, max = 80): string {
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, ".");
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/** "UID [primary fingerprint]" plus "subkey X" for a subkey: what the device shows. */
export function describeKey(e: KeyEntry): string {
  const uid = e.uid === null ? "(no user ID)" : displaySafe(e.uid);
  const sub = e.isPrimary ? "" : ` subkey ${e.fingerprint}`;
  return `${uid} [${e.primaryFingerprint}]${sub}`;
}

/** The text split-gpg2 puts into SETKEYDESC (before escaping): UID, fingerprints. */
export function keyDescription(e: KeyEntry): string {
  const uidLine = e.uid === null ? "" : `UID: ${e.uid.split("\n")[0]}\n`;
  const sub = e.isPrimary ? "" : `\nSubkey Fingerprint: ${e.fingerprint}`;
  return `${uidLine}Fingerprint: ${e.primaryFingerprint}${sub}`;
}
