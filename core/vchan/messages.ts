/**
 * vchan wire messages, carried in session records of kind VCHAN (core/session/messages.ts).
 * Layout (after the record kind byte): type u8 | channel id u32 BE | rest:
 *
 *   OPEN   0x01  rest = opening metadata (strict CBOR, decoded by the layer above)
 *   DATA   0x02  rest = 1..VCHAN_MAX_CHUNK bytes of stream data
 *   EOF    0x03  rest = empty        (sender will send no more data on this channel)
 *   CREDIT 0x04  rest = u32 BE > 0   (receiver consumed that many bytes: sender may send more)
 *   RESET  0x05  rest = u8 reason    (both directions end now; buffered data is dropped)
 *
 * The hot-path messages are fixed binary, so no CBOR parser runs per data chunk.
 * Must never: return a message whose fields were not all checked.
 */
import { ProtocolError } from "../errors.ts";
import { VCHAN_DATA_HEADER_BYTES, VCHAN_MAX_CHUNK } from "../wire/limits.ts";

export const VchanType = { OPEN: 1, DATA: 2, EOF: 3, CREDIT: 4, RESET: 5 } as const;

/** Fixed reset reasons (no free text crosses the wire). */
export const ResetReason = { CANCELLED: 0, REFUSED: 1, LIMIT: 2, ERROR: 3 } as const;
export type ResetReason = (typeof ResetReason)[keyof typeof ResetReason];

export type VchanMessage =
  | { type: typeof VchanType.OPEN; id: number; meta: Uint8Array }
  | { type: typeof VchanType.DATA; id: number; data: Uint8Array }
  | { type: typeof VchanType.EOF; id: number }
  | { type: typeof VchanType.CREDIT; id: number; bytes: number }
  | { type: typeof VchanType.RESET; id: number; reason: ResetReason };

/** The record kind byte the session expects first (RecordKind.VCHAN). */
const RECORD_KIND_VCHAN = 1;

const ALIGN_PAD = 64 - VCHAN_DATA_HEADER_BYTES;

/** A record with the header filled in and room for `bodyLength` bytes after it. */
export function vchanRecord(type: number, id: number, bodyLength: number): Uint8Array {
  // The body lands 64-byte aligned (see core/wire/tcp-frame.ts: misaligned large copies are slow).
  const record = new Uint8Array(ALIGN_PAD + VCHAN_DATA_HEADER_BYTES + bodyLength).subarray(ALIGN_PAD);
  record[0] = RECORD_KIND_VCHAN;
  record[1] = type;
  new DataView(record.buffer, record.byteOffset).setUint32(2, id, false);
  return record;
}

export function encodeVchan(m: VchanMessage): Uint8Array {
  switch (m.type) {
    case VchanType.OPEN: {
      const r = vchanRecord(m.type, m.id, m.meta.length);
      r.set(m.meta, VCHAN_DATA_HEADER_BYTES);
      return r;
    }
    case VchanType.DATA: {
      const r = vchanRecord(m.type, m.id, m.data.length);
      r.set(m.data, VCHAN_DATA_HEADER_BYTES);
      return r;
    }
    case VchanType.EOF:
      return vchanRecord(m.type, m.id, 0);
    case VchanType.CREDIT: {
      const r = vchanRecord(m.type, m.id, 4);
      new DataView(r.buffer, r.byteOffset).setUint32(VCHAN_DATA_HEADER_BYTES, m.bytes, false);
      return r;
    }
    case VchanType.RESET: {
      const r = vchanRecord(m.type, m.id, 1);
      r[VCHAN_DATA_HEADER_BYTES] = m.reason;
      return r;
    }
  }
}

/** Decodes a whole VCHAN record (kind byte included). Payloads are views into `record`. */
export function decodeVchan(record: Uint8Array): VchanMessage {
  if (record.length < VCHAN_DATA_HEADER_BYTES || record[0] !== RECORD_KIND_VCHAN) {
    throw new ProtocolError("frame-malformed", "vchan header");
  }
  const view = new DataView(record.buffer, record.byteOffset, record.length);
  const type = record[1];
  const id = view.getUint32(2, false);
  const rest = record.subarray(VCHAN_DATA_HEADER_BYTES);
  switch (type) {
    case VchanType.OPEN:
      if (rest.length > VCHAN_MAX_CHUNK) throw new ProtocolError("frame-too-large", "open metadata");
      return { type, id, meta: rest };
    case VchanType.DATA:
      if (rest.length === 0) throw new ProtocolError("frame-malformed", "empty data");
      if (rest.length > VCHAN_MAX_CHUNK) throw new ProtocolError("frame-too-large", "data chunk");
      return { type, id, data: rest };
    case VchanType.EOF:
      if (rest.length !== 0) throw new ProtocolError("frame-malformed", "eof");
      return { type, id };
    case VchanType.CREDIT: {
      if (rest.length !== 4) throw new ProtocolError("frame-malformed", "credit");
      const bytes = view.getUint32(VCHAN_DATA_HEADER_BYTES, false);
      if (bytes === 0) throw new ProtocolError("frame-malformed", "zero credit");
      return { type, id, bytes };
    }
    case VchanType.RESET: {
      if (rest.length !== 1) throw new ProtocolError("frame-malformed", "reset");
      const reason = rest[0]!;
      if (reason > ResetReason.ERROR) throw new ProtocolError("frame-malformed", "reset reason");
      return { type, id, reason: reason as ResetReason };
    }
    default:
      throw new ProtocolError("frame-malformed", "vchan type");
  }
}
