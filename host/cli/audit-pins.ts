/**
 * The last verified head of each remote's audit log, kept in the host's state dir
 * (`audit-pins.json`, mode 0600), so that the next `qubes-air logs QUBE` checks the new log
 * against it (core/audit/verify.ts pins): a log that was cut short (pin-missing) or rebuilt
 * from the start (pin-mismatch) is caught even when its own chain is intact.
 *
 *   {"version":1,"pins":{"pi-gpg":{"seq":12,"hash":"<64 hex>","agentKey":"qa-pub:…","verifiedAt":"…"}}}
 *
 * A pin belongs to one device key: after re-pairing with a new key the old pin is not applied.
 * Must never: move a pin backwards or save one from a log that did not verify.
 */
import { ConfigError } from "../../core/errors.ts";
import { platform } from "../../platform/index.ts";

export interface AuditPin {
  readonly seq: number;
  readonly hash: string;
  /** The device key the log was fetched from (null when the registry had no entry). */
  readonly agentKey: string | null;
  readonly verifiedAt: string;
}

export type AuditPins = Record<string, AuditPin>;

const MAX_BYTES = 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

export function parsePinArg(text: string): { seq: number; hash: string } | null {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text);
  if (!m) return null;
  const seq = Number(m[1]);
  return seq >= 1 ? { seq, hash: m[2]! } : null;
}

export async function loadPins(path: string): Promise<AuditPins> {
  const st = await platform.stat(path);
  if (!st) return {};
  if (!st.isFile || st.size > MAX_BYTES)
    throw new ConfigError(`${path} is not an audit pin file: move it away`);
  if ((st.mode & 0o022) !== 0) {
    throw new ConfigError(
      `${path} is writable by group or others, so its pins cannot be trusted: chmod 600 ${path}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await platform.readFile(path)));
  } catch {
    throw new ConfigError(`${path} is not valid JSON: restore it, or remove it to start pinning afresh`);
  }
  const pins = (value as { version?: unknown; pins?: unknown } | null)?.pins;
  if ((value as { version?: unknown }).version !== 1 || typeof pins !== "object" || pins === null) {
    throw new ConfigError(`${path} is not a version 1 audit pin file: remove it to start pinning afresh`);
  }
  const out: AuditPins = {};
  for (const [name, p] of Object.entries(pins as Record<string, unknown>)) {
    const e = p as Partial<AuditPin>;
    if (
      typeof e?.seq !== "number" ||
      !Number.isSafeInteger(e.seq) ||
      e.seq < 1 ||
      typeof e.hash !== "string" ||
      !HEX64.test(e.hash) ||
      (e.agentKey !== null && typeof e.agentKey !== "string") ||
      typeof e.verifiedAt !== "string"
    ) {
      throw new ConfigError(`${path}: the pin of "${name.slice(0, 40)}" is malformed; remove that entry`);
    }
    out[name] = { seq: e.seq, hash: e.hash, agentKey: e.agentKey ?? null, verifiedAt: e.verifiedAt };
  }
  return out;
}

export async function savePin(path: string, remote: string, pin: AuditPin): Promise<void> {
  const pins = await loadPins(path);
  const old = pins[remote];
  if (old && old.agentKey === pin.agentKey && old.seq > pin.seq) return;
  pins[remote] = pin;
  await platform.writeFileAtomic(path, `${JSON.stringify({ version: 1, pins }, null, 2)}\n`, 0o600);
}
