/**
 * What every remote link of one daemon shares: the host key, the crypto resolver and ranked
 * suites, the IK timestamp source, timers, where by-id names live, and the callbacks into the
 * daemon (calls from devices, "last seen" persistence, the log).
 */
import type { CryptoResolver, LinkSuiteName } from "../../core/noise/suites.ts";
import { systemClock } from "../../core/session/duplex.ts";
import type { LinkTuning } from "../../core/session/establish.ts";
import type { StaticKeyPair } from "../../core/session/key-text.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import { KEEPALIVE_INTERVAL_MS, KEEPALIVE_TIMEOUT_MS } from "../../core/wire/limits.ts";
import type { TimestampSource } from "./timestamps.ts";

export interface LinkContext {
  readonly staticKey: StaticKeyPair;
  readonly resolver: CryptoResolver;
  readonly suites: readonly LinkSuiteName[];
  readonly version: string;
  readonly timestamps: TimestampSource;
  readonly byIdDir: string;
  /** RTT ping period; also the session's idle keepalive. */
  readonly keepaliveMs: number;
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
  /** A device opened a channel: a call into Qubes (host/incoming.ts). */
  readonly onIncoming: (remote: string, channel: Channel, meta: Uint8Array) => void;
  readonly onSeen: (remote: string, atMs: number) => void;
  readonly log: (message: string) => void;
}

export function tuningFor(ctx: LinkContext, onOpen: LinkTuning["onOpen"]): LinkTuning {
  return {
    clock: systemClock,
    session: {
      keepaliveIntervalMs: ctx.keepaliveMs,
      // Three missed keepalives: 30 s by default (KEEPALIVE_TIMEOUT_MS). On a serial line this is
      // how a device that died silently is noticed.
      keepaliveTimeoutMs:
        ctx.keepaliveMs === KEEPALIVE_INTERVAL_MS ? KEEPALIVE_TIMEOUT_MS : 3 * ctx.keepaliveMs,
    },
    onOpen,
  };
}
