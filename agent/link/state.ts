/**
 * The agent's persistent state, all in stateDir and written atomically with mode 0600
 * (docs/agent.md "State"):
 *   device.key     this device's static key (created on first start if missing)
 *   pairing-token  64 hex digits; one-time: pair-psk is open only while it exists, and it is
 *                  deleted right after a successful pairing
 *   hosts.json     pinned host keys, each with its pairing id (core/session/pairing-id.ts) and
 *                  the last accepted IK timestamp; and hostAddresses, the source addresses
 *                  pinned hosts connected from (agent/link/dh-budget.ts KnownAddresses), so
 *                  the reserved handshake budget holds across a restart
 *   code-pairing.json  failed code pairing attempts and the lock (code-pairing-guard.ts)
 *
 * The IK timestamp is recorded in memory at once (so a concurrent replay is refused) and the
 * handshake's reply waits for that write (PeerStore.acceptTimestamp), so a replay of message 1
 * after an agent restart is refused too.
 * A fresh pairing of a host key starts its IK timestamps again (issue 9: a host that lost its
 * timestamp state while its clock was behind recovers by unpairing and pairing again), under a
 * new pairing id: an IK message 1 made for the earlier pairing names the old id and is refused,
 * whatever its timestamp. An entry written before pairing ids (no "pairing" field) has
 * LEGACY_PAIRING_ID, as the host's registry entry of that pairing does.
 * Must never: answer a reconnect before its timestamp is on disk, accept one for another pairing
 * than the last, or keep accepting a token after it was used once.
 */
import { unlink } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { equalBytes } from "../../core/bytes.ts";
import { ConfigError } from "../../core/errors.ts";
import type { PeerStore } from "../../core/session/handshake.ts";
import {
  formatPublicKey,
  parsePublicKey,
  type StaticKeyPair,
  type StaticPublicKey,
} from "../../core/session/key-text.ts";
import { formatPairingId, LEGACY_PAIRING_ID, parsePairingId } from "../../core/session/pairing-id.ts";
import { KNOWN_HOST_ADDRESSES_MAX } from "../../core/wire/limits.ts";
import { platform } from "../../platform/index.ts";
import { generateKeyFile, loadKeyPair } from "../../platform/key-file.ts";
import { CodePairingGuard } from "./code-pairing-guard.ts";

export const TOKEN_BYTES = 32;
const KEYGEN = "qubes-air-agent keygen --out";

interface HostEntry {
  key: string;
  pairedAt: string;
  /** The pairing's id; LEGACY_PAIRING_ID for a pairing made before ids (no field in the file). */
  pairing: Uint8Array;
  lastTimestamp: bigint | null;
}

export class AgentState {
  private hosts = new Map<string, HostEntry>();
  private addresses: string[] = [];
  private writing: Promise<void> = Promise.resolve();
  private usedTokens = new Set<string>();

  private constructor(
    readonly dir: string,
    readonly deviceKey: StaticKeyPair,
    /** True when this start created device.key. */
    readonly keyCreated: boolean,
    /** Failed code pairings and the lock they set, on disk. */
    readonly codePairing: CodePairingGuard,
  ) {}

  static async open(dir: string): Promise<AgentState> {
    await ensureStateDir(dir);
    const keyPath = join(dir, "device.key");
    const exists = (await platform.stat(keyPath)) !== null;
    const key = exists
      ? await loadKeyPair(keyPath, { keygenCommand: KEYGEN })
      : await generateKeyFile(keyPath);
    const state = new AgentState(dir, key, !exists, await CodePairingGuard.open(dir));
    await state.loadHosts();
    return state;
  }

  get hostsPath(): string {
    return join(this.dir, "hosts.json");
  }

  get tokenPath(): string {
    return join(this.dir, "pairing-token");
  }

  get pinnedCount(): number {
    return this.hosts.size;
  }

  /**
   * The PeerStore the handshake consults. acceptTimestamp resolves only once the timestamp is on
   * disk, and the handshake sends its reply only after that, so a replay after a restart fails.
   */
  readonly peers: PeerStore = {
    isPinned: (key) => this.hosts.has(formatPublicKey(key)),
    acceptTimestamp: async (key, ts, pairing) => {
      const entry = this.hosts.get(formatPublicKey(key));
      if (!entry || !equalBytes(pairing, entry.pairing)) return false;
      if (entry.lastTimestamp !== null && ts <= entry.lastTimestamp) return false;
      entry.lastTimestamp = ts;
      this.scheduleWrite();
      await this.writing;
      return true;
    },
  };

  /** Source addresses pinned hosts connected from, oldest first (at most KNOWN_HOST_ADDRESSES_MAX). */
  get hostAddresses(): readonly string[] {
    return this.addresses;
  }

  /** Remembers a pinned host's source address (a write only when it is new). */
  rememberHostAddress(address: string): void {
    if (this.addresses.includes(address) || isIP(address) === 0) return;
    this.addresses = [...this.addresses, address].slice(-KNOWN_HOST_ADDRESSES_MAX);
    this.scheduleWrite();
    this.writing.catch(() => {}); // a failed write shows at the next reconnect's persisted()
  }

  /** Resolves once every change made so far is on disk; rejects if writing failed. */
  persisted(): Promise<void> {
    return this.writing;
  }

  /**
   * Pins a host key learned by a pairing the device accepted (token or confirmed code) under that
   * pairing's id, with no IK timestamp yet: a host that lost its timestamps can recover by pairing
   * again. The timestamps start again, but only for message 1s naming the new id: one recorded
   * before the re-pairing names the old id and is refused (docs/threat-model.md).
   */
  async pin(key: StaticPublicKey, pairing: Uint8Array): Promise<void> {
    const text = formatPublicKey(key);
    this.hosts.set(text, {
      key: text,
      pairedAt: new Date(platform.now()).toISOString(),
      pairing: pairing.slice(),
      lastTimestamp: null,
    });
    this.scheduleWrite();
    await this.writing;
  }

  /** The pairing token if one is set and unused; a malformed token file is a ConfigError. */
  async readToken(): Promise<Uint8Array | undefined> {
    const st = await platform.stat(this.tokenPath);
    if (!st) return undefined;
    if (!st.isFile || st.size > 200) throw new ConfigError(`${this.tokenPath} is not a pairing token file`);
    if (st.mode & 0o077) {
      throw new ConfigError(
        `${this.tokenPath} is readable by others; pairing is closed. Run: chmod 600 ${this.tokenPath}`,
      );
    }
    const text = new TextDecoder().decode(await platform.readFile(this.tokenPath)).trim();
    if (!/^[0-9a-fA-F]{64}$/.test(text)) {
      throw new ConfigError(
        `${this.tokenPath} must hold 64 hex digits; create a new one with: qubes-air-agent pair-token`,
      );
    }
    if (this.usedTokens.has(text.toLowerCase())) return undefined;
    return Uint8Array.from(Buffer.from(text, "hex"));
  }

  /**
   * Marks a token as used (synchronously, so a second handshake racing with this one is refused)
   * and deletes the file. False if it had been used already.
   */
  consumeToken(token: Uint8Array): boolean {
    const hex = Buffer.from(token).toString("hex");
    if (this.usedTokens.has(hex)) return false;
    this.usedTokens.add(hex);
    return true;
  }

  async deleteTokenFile(): Promise<void> {
    await unlink(this.tokenPath).catch((e: { code?: string }) => {
      if (e.code !== "ENOENT") throw e;
    });
  }

  /** Creates a fresh one-time token (replacing any earlier one) and returns it as hex. */
  static async writeToken(dir: string): Promise<string> {
    await ensureStateDir(dir);
    const hex = Buffer.from(platform.randomBytes(TOKEN_BYTES)).toString("hex");
    await platform.writeFileAtomic(join(dir, "pairing-token"), `${hex}\n`, 0o600);
    return hex;
  }

  private scheduleWrite(): void {
    // Each write takes a snapshot when it starts, so it includes every change made before it.
    this.writing = this.writing
      .catch(() => {})
      .then(() => platform.writeFileAtomic(this.hostsPath, this.serialize(), 0o600));
  }

  private serialize(): string {
    const hosts = [...this.hosts.values()].map((h) => ({
      key: h.key,
      pairedAt: h.pairedAt,
      ...(equalBytes(h.pairing, LEGACY_PAIRING_ID) ? {} : { pairing: formatPairingId(h.pairing) }),
      lastTimestamp: h.lastTimestamp === null ? null : h.lastTimestamp.toString(),
    }));
    const extra = this.addresses.length > 0 ? { hostAddresses: this.addresses } : {};
    return `${JSON.stringify({ version: 1, hosts, ...extra }, null, 2)}\n`;
  }

  private async loadHosts(): Promise<void> {
    const path = this.hostsPath;
    const st = await platform.stat(path);
    if (!st) return;
    if (!st.isFile) throw new ConfigError(`${path} is not a regular file`);
    if (st.mode & 0o022) {
      throw new ConfigError(
        `${path} is writable by group or others (they could pin a host). Run: chmod 600 ${path}`,
      );
    }
    const broken = (what: string) =>
      new ConfigError(`${path} is damaged (${what}); restore it from a backup, or delete it and pair again`);
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder().decode(await platform.readFile(path)));
    } catch {
      throw broken("not JSON");
    }
    const d = doc as { version?: unknown; hosts?: unknown; hostAddresses?: unknown };
    if (!d || typeof d !== "object" || d.version !== 1 || !Array.isArray(d.hosts))
      throw broken("no version 1 hosts list");
    if (d.hostAddresses !== undefined) {
      const list = d.hostAddresses;
      if (
        !Array.isArray(list) ||
        list.length > KNOWN_HOST_ADDRESSES_MAX ||
        !list.every((a) => typeof a === "string" && isIP(a) !== 0)
      )
        throw broken("hostAddresses is not a list of IP addresses");
      this.addresses = [...new Set(list as string[])];
    }
    for (const h of d.hosts as Record<string, unknown>[]) {
      const keys = h && typeof h === "object" ? Object.keys(h).sort().join(",") : "";
      if (
        (keys !== "key,lastTimestamp,pairedAt" && keys !== "key,lastTimestamp,pairedAt,pairing") ||
        typeof h.key !== "string" ||
        typeof h.pairedAt !== "string"
      ) {
        throw broken("a host entry has the wrong fields");
      }
      const pairing = h.pairing === undefined ? LEGACY_PAIRING_ID : parsePairingId(String(h.pairing));
      if (pairing === null || (h.pairing !== undefined && typeof h.pairing !== "string"))
        throw broken("a bad pairing id");
      const key = formatPublicKey(parsePublicKey(h.key, `${path} (a host key)`));
      const ts = h.lastTimestamp;
      if (ts !== null && (typeof ts !== "string" || !/^\d{1,30}$/.test(ts)))
        throw broken("a bad lastTimestamp");
      this.hosts.set(key, {
        key,
        pairedAt: h.pairedAt,
        pairing,
        lastTimestamp: ts === null ? null : BigInt(ts as string),
      });
    }
  }
}

async function ensureStateDir(dir: string): Promise<void> {
  const st = await platform.stat(dir);
  if (!st) {
    await platform.mkdirp(dir, 0o700);
    return;
  }
  if (!st.isDirectory) throw new ConfigError(`state directory ${dir} is not a directory`);
  if (st.mode & 0o022) {
    throw new ConfigError(`state directory ${dir} is writable by group or others. Run: chmod 700 ${dir}`);
  }
}
