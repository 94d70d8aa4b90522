/**
 * The table of TCP handshakes that have not yet authenticated (pure: no sockets, an injected
 * clock). It decides which connection runs when anonymous ones compete for room:
 *
 *   - offer deadline: a connection that has not delivered its cleartext offer within
 *     OFFER_TIMEOUT_MS is evicted ("offer-timeout"); a host sends it right after connect.
 *   - per-address cap: a new connection from an address that already holds `perAddress`
 *     unauthenticated entries evicts that address's oldest ("address-full").
 *   - table full: a new connection evicts the oldest entry of the address holding the most
 *     unauthenticated entries, the oldest overall on a tie ("table-full"). A host holds one entry,
 *     so it is chosen only when every entry is the only one of its address (the attacker needs
 *     `max - 1` addresses at once), and then only after `max` newer connections arrived before
 *     its IK message 1 did.
 *   - known host addresses (agent/link/dh-budget.ts KnownAddresses: where a pinned host completed
 *     a reconnect): when the table is full, entries from other addresses go first; a known
 *     address's entry is chosen only when every unauthenticated entry is from a known address.
 *     So a flood from any number of other addresses never evicts the returning host.
 *   - authenticated: an entry whose peer proved a pinned key (IK message 1) or the pairing token
 *     (XXpsk3 message 3) is never evicted; if the table is full of those, the new connection is
 *     refused.
 * Nothing an unauthenticated peer sends is trusted for ordering: a valid offer is public, so
 * stage does not buy priority; only age, the address's share, and the pinned key do.
 * Must never: evict an authenticated entry, let one address hold more than `perAddress`
 * unauthenticated entries, hold more than `max` entries, or call onEvict twice for one entry.
 */
import type { Clock } from "../../core/session/duplex.ts";

export interface HalfOpenLimits {
  readonly max: number;
  readonly perAddress: number;
  readonly offerTimeoutMs: number;
}

export type EvictReason = "offer-timeout" | "address-full" | "table-full";

/** One admitted connection's place in the table; every method is safe to call after eviction. */
export interface HalfOpen {
  /** Its offer arrived: the offer deadline no longer applies. */
  offered(): void;
  /** Its peer proved a pinned static key: never evicted from now on. */
  authenticated(): void;
  /** The handshake finished (either way): the entry leaves the table. */
  done(): void;
}

interface Entry {
  readonly address: string;
  readonly onEvict: (reason: EvictReason) => void;
  authenticated: boolean;
  cancelTimer: (() => void) | null;
}

export class HalfOpenTable {
  /** Insertion order is admission order: the first entry is the oldest. */
  private readonly entries = new Set<Entry>();

  constructor(
    private readonly limits: HalfOpenLimits,
    private readonly clock: Pick<Clock, "setTimer">,
    /** Addresses whose entries are evicted last (a pinned host's). */
    private readonly isKnown: (address: string) => boolean = () => false,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Unauthenticated entries held by `address`. */
  heldBy(address: string): number {
    let n = 0;
    for (const e of this.entries) if (!e.authenticated && e.address === address) n++;
    return n;
  }

  /**
   * Admits a connection from `address`, evicting another first when a limit requires it (its
   * onEvict runs before this returns). Null: the table is full of authenticated handshakes.
   */
  admit(address: string, onEvict: (reason: EvictReason) => void): HalfOpen | null {
    const { max, perAddress } = this.limits;
    if (this.heldBy(address) >= perAddress) {
      this.evict(this.oldestOf(address)!, "address-full");
    } else if (this.entries.size >= max) {
      const victim = this.victim();
      if (!victim) return null;
      this.evict(victim, "table-full");
    }
    const entry: Entry = { address, onEvict, authenticated: false, cancelTimer: null };
    this.entries.add(entry);
    entry.cancelTimer = this.clock.setTimer(this.limits.offerTimeoutMs, () => {
      entry.cancelTimer = null;
      if (this.entries.has(entry)) this.evict(entry, "offer-timeout");
    });
    const stopTimer = () => {
      entry.cancelTimer?.();
      entry.cancelTimer = null;
    };
    return {
      offered: stopTimer,
      authenticated: () => {
        stopTimer();
        if (this.entries.has(entry)) entry.authenticated = true;
      },
      done: () => {
        stopTimer();
        this.entries.delete(entry);
      },
    };
  }

  private oldestOf(address: string): Entry | undefined {
    for (const e of this.entries) if (!e.authenticated && e.address === address) return e;
    return undefined;
  }

  /**
   * The oldest unauthenticated entry of the address holding the most of them, among addresses
   * that are not known hosts' if there are any such entries.
   */
  private victim(): Entry | undefined {
    const candidates = [...this.entries].filter((e) => !e.authenticated);
    const strangers = candidates.filter((e) => !this.isKnown(e.address));
    const pool = strangers.length > 0 ? strangers : candidates;
    const held = new Map<string, number>();
    let most = 0;
    for (const e of pool) {
      const n = (held.get(e.address) ?? 0) + 1;
      held.set(e.address, n);
      if (n > most) most = n;
    }
    return pool.find((e) => held.get(e.address) === most);
  }

  private evict(entry: Entry, reason: EvictReason): void {
    this.entries.delete(entry);
    entry.cancelTimer?.();
    entry.cancelTimer = null;
    entry.onEvict(reason);
  }
}
