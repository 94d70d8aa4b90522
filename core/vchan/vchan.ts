/**
 * The vchan multiplexer: many channels over one session (DESIGN.md "The link", step 4).
 *
 * Channel ids are u32 and never reused within a session: the session initiator opens even ids,
 * the responder odd ones, each strictly increasing. A message for an id that was opened and has
 * since ended is ignored (it crossed our reset or EOF); one for an id never opened is a peer
 * fault. At most VCHAN_MAX_CHANNELS are open at once; a peer OPEN beyond that is reset with
 * LIMIT, not a session fault.
 * Must never: let one channel's fault pass silently into another, or buffer beyond the windows.
 */
import { assert, ProtocolError } from "../errors.ts";
import { VCHAN_DATA_HEADER_BYTES, VCHAN_MAX_CHANNELS, VCHAN_MAX_CHUNK } from "../wire/limits.ts";
import { Channel, type ChannelHost } from "./channel.ts";
import { decodeVchan, encodeVchan, ResetReason, VchanType, vchanRecord } from "./messages.ts";

export interface VchanOptions {
  /** True on the session initiator (even ids). */
  readonly initiator: boolean;
  /** Sends one VCHAN record through the session. */
  readonly send: (record: Uint8Array) => Promise<void>;
  /** A channel the peer opened, with its metadata (untrusted bytes for the layer above). */
  readonly onOpen: (channel: Channel, meta: Uint8Array) => void;
  /** A peer OPEN refused because VCHAN_MAX_CHANNELS were open (the caller logs it). */
  readonly onOpenRefused?: () => void;
  readonly maxChannels?: number;
  /** Largest DATA payload; the link's record limit minus the vchan header. */
  readonly maxChunk?: number;
}

export class Vchan implements ChannelHost {
  private readonly channels = new Map<number, Channel>();
  private nextLocalId: number;
  private lastPeerId = -1;
  private ended: Error | null = null;

  constructor(private readonly o: VchanOptions) {
    this.nextLocalId = o.initiator ? 0 : 1;
  }

  get openChannels(): number {
    return this.channels.size;
  }

  /** Opens a channel; data may be written at once (no round trip before the first byte). */
  open(meta: Uint8Array, description = "vchan"): Channel {
    if (this.ended) throw this.ended;
    if (this.channels.size >= (this.o.maxChannels ?? VCHAN_MAX_CHANNELS)) {
      throw new ProtocolError("channel-limit", "too many open channels");
    }
    assert(meta.length <= VCHAN_MAX_CHUNK, "open metadata too large");
    if (this.nextLocalId > 0xffff_fffd) throw new ProtocolError("channel-limit", "channel ids exhausted");
    const id = this.nextLocalId;
    this.nextLocalId += 2;
    const channel = new Channel(id, `${description} #${id}`, this);
    this.channels.set(id, channel);
    this.o.send(encodeVchan({ type: VchanType.OPEN, id, meta })).catch((e) => channel.onSessionEnd(e));
    return channel;
  }

  /** One VCHAN record from the session. Throws ProtocolError on a peer fault (ends the session). */
  receive(record: Uint8Array): void {
    const m = decodeVchan(record);
    const peerOwned = (m.id % 2 === 0) !== this.o.initiator;
    if (m.type === VchanType.OPEN) {
      if (!peerOwned || m.id <= this.lastPeerId) throw new ProtocolError("channel-unknown", "bad open id");
      this.lastPeerId = m.id;
      if (this.channels.size >= (this.o.maxChannels ?? VCHAN_MAX_CHANNELS)) {
        this.sendControl(m.id, VchanType.RESET, ResetReason.LIMIT).catch(() => {});
        this.o.onOpenRefused?.();
        return;
      }
      const channel = new Channel(m.id, `vchan #${m.id}`, this);
      this.channels.set(m.id, channel);
      this.o.onOpen(channel, m.meta);
      return;
    }
    const channel = this.channels.get(m.id);
    if (!channel) {
      const everOpened = peerOwned ? m.id <= this.lastPeerId : m.id < this.nextLocalId;
      if (!everOpened) throw new ProtocolError("channel-unknown");
      return; // crossed our reset/EOF in flight
    }
    switch (m.type) {
      case VchanType.DATA:
        return channel.onData(m.data);
      case VchanType.EOF:
        return channel.onEof();
      case VchanType.CREDIT:
        return channel.onCredit(m.bytes);
      case VchanType.RESET:
        return channel.onReset(m.reason);
    }
  }

  /** The session ended: every channel fails with this error. */
  end(error: Error): void {
    if (this.ended) return;
    this.ended = error;
    for (const channel of [...this.channels.values()]) channel.onSessionEnd(error);
    this.channels.clear();
  }

  // --- ChannelHost ---

  get maxChunk(): number {
    return Math.min(this.o.maxChunk ?? VCHAN_MAX_CHUNK, VCHAN_MAX_CHUNK);
  }

  sendData(id: number, data: Uint8Array, prefix?: Uint8Array): Promise<void> {
    const before = prefix?.length ?? 0;
    const record = vchanRecord(VchanType.DATA, id, before + data.length);
    if (prefix) record.set(prefix, VCHAN_DATA_HEADER_BYTES);
    record.set(data, VCHAN_DATA_HEADER_BYTES + before);
    return this.o.send(record);
  }

  sendControl(id: number, type: number, value = 0): Promise<void> {
    if (type === VchanType.EOF) return this.o.send(encodeVchan({ type, id }));
    if (type === VchanType.CREDIT) return this.o.send(encodeVchan({ type, id, bytes: value }));
    assert(type === VchanType.RESET, "unknown control type");
    return this.o.send(encodeVchan({ type, id, reason: value as ResetReason }));
  }

  release(id: number): void {
    this.channels.delete(id);
  }
}
