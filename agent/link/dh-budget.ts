/**
 * The agent's global budget of handshake CPU (pure: an injected monotonic clock). Every X25519
 * operation run for a peer that has not proved a pinned key is paid from it before it runs
 * (RecordLink.beforeDh, core/session/handshake.ts RESPONDER_DH_OPS), so the DH work a flood
 * costs is bounded per second however many source addresses it comes from:
 *
 *   - general bucket: HANDSHAKE_DH_PER_SECOND, burst HANDSHAKE_DH_BURST, for everyone.
 *   - reserved bucket: HANDSHAKE_DH_RESERVED_PER_SECOND / _BURST, only for known host addresses
 *     (KnownAddresses: where a pinned host completed a reconnect). A known address draws on it
 *     first, so a flood that empties the general bucket does not keep the paired host out.
 *
 * Must never: let DH work run unpaid for an unauthenticated peer, let an address that is not
 * known draw on the reserved bucket, or grow with the number of addresses seen.
 */
import {
  HANDSHAKE_DH_BURST,
  HANDSHAKE_DH_PER_SECOND,
  HANDSHAKE_DH_RESERVED_BURST,
  HANDSHAKE_DH_RESERVED_PER_SECOND,
  KNOWN_HOST_ADDRESSES_MAX,
} from "../../core/wire/limits.ts";

/** A token bucket over a monotonic clock in ms. */
class Bucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  take(ops: number, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.perSecond) / 1000);
    this.at = now;
    if (this.tokens < ops) return false;
    this.tokens -= ops;
    return true;
  }
}

/**
 * Source addresses of pinned hosts' completed reconnects (and token pairings), most recent last;
 * bounded. `initial` and `onNew` let the agent keep them across a restart (AgentState).
 */
export class KnownAddresses {
  private readonly addresses: Set<string>;

  constructor(
    private readonly max: number = KNOWN_HOST_ADDRESSES_MAX,
    initial: readonly string[] = [],
    private readonly onNew: (address: string) => void = () => {},
  ) {
    this.addresses = new Set(initial.slice(-max));
  }

  has(address: string): boolean {
    return this.addresses.has(address);
  }

  /** A pinned host completed a reconnect from `address` (never called for an unauthenticated one). */
  add(address: string): void {
    if (!this.addresses.delete(address)) this.onNew(address);
    this.addresses.add(address);
    if (this.addresses.size > this.max) this.addresses.delete(this.addresses.values().next().value!);
  }

  get size(): number {
    return this.addresses.size;
  }
}

export interface DhBudgetLimits {
  readonly perSecond: number;
  readonly burst: number;
  readonly reservedPerSecond: number;
  readonly reservedBurst: number;
}

export const DEFAULT_DH_LIMITS: DhBudgetLimits = {
  perSecond: HANDSHAKE_DH_PER_SECOND,
  burst: HANDSHAKE_DH_BURST,
  reservedPerSecond: HANDSHAKE_DH_RESERVED_PER_SECOND,
  reservedBurst: HANDSHAKE_DH_RESERVED_BURST,
};

export class DhBudget {
  private readonly general: Bucket;
  private readonly reserved: Bucket;
  /** DH operations paid for and refused since the last take(), for the refusal summary. */
  private spentOps = 0;
  private refusedOps = 0;

  constructor(
    readonly known: KnownAddresses,
    private readonly now: () => number,
    limits: DhBudgetLimits = DEFAULT_DH_LIMITS,
  ) {
    const t = now();
    this.general = new Bucket(limits.perSecond, limits.burst, t);
    this.reserved = new Bucket(limits.reservedPerSecond, limits.reservedBurst, t);
  }

  /** Pays for `ops` DH operations for a peer at `address`; false: refuse it, run nothing. */
  spend(address: string, ops: number): boolean {
    const t = this.now();
    const ok = (this.known.has(address) && this.reserved.take(ops, t)) || this.general.take(ops, t);
    if (ok) this.spentOps += ops;
    else this.refusedOps += ops;
    return ok;
  }

  /** The operations paid for and refused since the last call. */
  drain(): { spent: number; refused: number } {
    const r = { spent: this.spentOps, refused: this.refusedOps };
    this.spentOps = 0;
    this.refusedOps = 0;
    return r;
  }
}
