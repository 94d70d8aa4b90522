/**
 * The Linux GPIO character-device uAPI v2 (include/uapi/linux/gpio.h) as pure encoders and
 * decoders: ioctl numbers computed from the _IOC encoding, and the struct layouts as byte
 * offsets. No I/O here; hw/gpio-ffi.ts does the syscalls, hw/gpio-button.ts the policy.
 *
 * Layouts hold on every architecture we run on (x86-64, arm64, armv7): the kernel uses
 * __aligned_u64 and explicit padding, so there is no ABI-dependent padding. The asm-generic
 * _IOC encoding (dir in bits 30-31, size 16-29, type 8-15, nr 0-7) is used by x86 and ARM;
 * it differs on alpha, mips, powerpc and sparc, which we do not support. Little-endian only.
 * Must never: trust bytes from the kernel beyond the checks in decodeLineEvents (they are a
 * decoder of untrusted input and are fuzzed in gpio-uapi.test.ts).
 */

export const GPIO_MAX_NAME_SIZE = 32;
export const GPIO_V2_LINES_MAX = 64;
export const GPIO_V2_LINE_NUM_ATTRS_MAX = 10;

const IOC_WRITE = 1;
const IOC_READ = 2;

/** _IOC(dir, type, nr, size) as an unsigned 32-bit number. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  if (size < 0 || size >= 1 << 14) throw new RangeError(`ioctl size ${size} does not fit 14 bits`);
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
export const ior = (type: number, nr: number, size: number) => ioc(IOC_READ, type, nr, size);
export const iowr = (type: number, nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, type, nr, size);

/** Struct sizes (sizeof in C). */
export const SIZEOF = {
  chipInfo: 68,
  lineAttribute: 16,
  lineConfigAttribute: 24,
  lineConfig: 272,
  lineRequest: 592,
  lineInfo: 256,
  lineEvent: 48,
} as const;

const GPIO_IOCTL_TYPE = 0xb4;
/** GPIO_GET_CHIPINFO_IOCTL is _IOR (read-only), the v2 line ioctls are _IOWR. */
export const GPIO_GET_CHIPINFO_IOCTL = ior(GPIO_IOCTL_TYPE, 0x01, SIZEOF.chipInfo);
export const GPIO_V2_GET_LINEINFO_IOCTL = iowr(GPIO_IOCTL_TYPE, 0x05, SIZEOF.lineInfo);
export const GPIO_V2_GET_LINE_IOCTL = iowr(GPIO_IOCTL_TYPE, 0x07, SIZEOF.lineRequest);

/** enum gpio_v2_line_flag (bit positions; values are u64). */
export const LineFlag = {
  USED: 1n << 0n,
  ACTIVE_LOW: 1n << 1n,
  INPUT: 1n << 2n,
  OUTPUT: 1n << 3n,
  EDGE_RISING: 1n << 4n,
  EDGE_FALLING: 1n << 5n,
  OPEN_DRAIN: 1n << 6n,
  OPEN_SOURCE: 1n << 7n,
  BIAS_PULL_UP: 1n << 8n,
  BIAS_PULL_DOWN: 1n << 9n,
  BIAS_DISABLED: 1n << 10n,
  EVENT_CLOCK_REALTIME: 1n << 11n,
  EVENT_CLOCK_HTE: 1n << 12n,
} as const;

/** enum gpio_v2_line_attr_id */
export const LineAttrId = { FLAGS: 1, OUTPUT_VALUES: 2, DEBOUNCE: 3 } as const;

/** enum gpio_v2_line_event_id */
export const LineEventId = { RISING_EDGE: 1, FALLING_EDGE: 2 } as const;

/** A malformed buffer from the kernel (or from a fuzzer). */
export class GpioDecodeError extends Error {
  override readonly name = "GpioDecodeError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A NUL-terminated char[size] field; the kernel guarantees termination, we do not rely on it. */
function readCString(buf: Uint8Array, offset: number, size: number): string {
  const field = buf.subarray(offset, offset + size);
  const nul = field.indexOf(0);
  return decoder.decode(nul === -1 ? field : field.subarray(0, nul));
}

function writeCString(buf: Uint8Array, offset: number, size: number, s: string): void {
  const bytes = encoder.encode(s);
  if (bytes.length >= size) throw new RangeError(`"${s}" is longer than ${size - 1} bytes`);
  if (bytes.includes(0)) throw new RangeError("name contains a NUL byte");
  buf.set(bytes, offset);
}

function expectSize(buf: Uint8Array, size: number, what: string): void {
  if (buf.length !== size) throw new GpioDecodeError(`${what}: ${buf.length} bytes, expected ${size}`);
}

export interface ChipInfo {
  name: string;
  label: string;
  lines: number;
}

/** struct gpiochip_info { char name[32]; char label[32]; __u32 lines; } */
export function decodeChipInfo(buf: Uint8Array): ChipInfo {
  expectSize(buf, SIZEOF.chipInfo, "gpiochip_info");
  return {
    name: readCString(buf, 0, GPIO_MAX_NAME_SIZE),
    label: readCString(buf, 32, GPIO_MAX_NAME_SIZE),
    lines: view(buf).getUint32(64, true),
  };
}

export function encodeChipInfo(info: ChipInfo): Uint8Array {
  const buf = new Uint8Array(SIZEOF.chipInfo);
  writeCString(buf, 0, GPIO_MAX_NAME_SIZE, info.name);
  writeCString(buf, 32, GPIO_MAX_NAME_SIZE, info.label);
  view(buf).setUint32(64, info.lines, true);
  return buf;
}

export interface LineInfo {
  name: string;
  consumer: string;
  offset: number;
  flags: bigint;
  /** From a DEBOUNCE attribute, when the line has one. */
  debounceUs?: number;
}

/** The GPIO_V2_GET_LINEINFO_IOCTL argument: zeroed, with `offset` set (the rest must be 0). */
export function encodeLineInfoQuery(offset: number): Uint8Array {
  const buf = new Uint8Array(SIZEOF.lineInfo);
  view(buf).setUint32(64, offset, true);
  return buf;
}

/**
 * struct gpio_v2_line_info { char name[32]; char consumer[32]; __u32 offset; __u32 num_attrs;
 * __aligned_u64 flags; struct gpio_v2_line_attribute attrs[10]; __u32 padding[4]; }
 */
export function decodeLineInfo(buf: Uint8Array): LineInfo {
  expectSize(buf, SIZEOF.lineInfo, "gpio_v2_line_info");
  const dv = view(buf);
  const numAttrs = dv.getUint32(68, true);
  if (numAttrs > GPIO_V2_LINE_NUM_ATTRS_MAX) throw new GpioDecodeError(`line info: ${numAttrs} attributes`);
  const info: LineInfo = {
    name: readCString(buf, 0, GPIO_MAX_NAME_SIZE),
    consumer: readCString(buf, 32, GPIO_MAX_NAME_SIZE),
    offset: dv.getUint32(64, true),
    flags: dv.getBigUint64(72, true),
  };
  for (let i = 0; i < numAttrs; i++) {
    const at = 80 + i * SIZEOF.lineAttribute;
    if (dv.getUint32(at, true) === LineAttrId.DEBOUNCE) info.debounceUs = dv.getUint32(at + 8, true);
  }
  return info;
}

export interface LineRequestSpec {
  offsets: readonly number[];
  consumer: string;
  /** gpio_v2_line_config.flags for all lines. */
  flags: bigint;
  /** Adds a DEBOUNCE attribute for all requested lines when > 0. */
  debounceUs?: number;
  /** 0 lets the kernel choose (16 per line). */
  eventBufferSize?: number;
}

/**
 * struct gpio_v2_line_request { __u32 offsets[64]; char consumer[32];
 * struct gpio_v2_line_config config; __u32 num_lines; __u32 event_buffer_size;
 * __u32 padding[5]; __s32 fd; }, with config at 288:
 * struct gpio_v2_line_config { __aligned_u64 flags; __u32 num_attrs; __u32 padding[5];
 * struct gpio_v2_line_config_attribute attrs[10]; } and each config attribute
 * { struct gpio_v2_line_attribute attr {__u32 id; __u32 padding; union {u64|u32}}; u64 mask; }.
 */
export function encodeLineRequest(spec: LineRequestSpec): Uint8Array {
  const n = spec.offsets.length;
  if (n < 1 || n > GPIO_V2_LINES_MAX) throw new RangeError(`${n} lines requested (1..${GPIO_V2_LINES_MAX})`);
  const buf = new Uint8Array(SIZEOF.lineRequest);
  const dv = view(buf);
  spec.offsets.forEach((o, i) => {
    if (!Number.isInteger(o) || o < 0 || o > 0xffffffff) throw new RangeError(`bad line offset ${o}`);
    dv.setUint32(i * 4, o, true);
  });
  writeCString(buf, 256, GPIO_MAX_NAME_SIZE, spec.consumer);
  const config = 288;
  dv.setBigUint64(config, spec.flags, true);
  let attrs = 0;
  if (spec.debounceUs && spec.debounceUs > 0) {
    const at = config + 32;
    dv.setUint32(at, LineAttrId.DEBOUNCE, true);
    dv.setUint32(at + 8, spec.debounceUs, true);
    const mask = n === 64 ? 0xffff_ffff_ffff_ffffn : (1n << BigInt(n)) - 1n;
    dv.setBigUint64(at + 16, mask, true);
    attrs = 1;
  }
  dv.setUint32(config + 8, attrs, true);
  dv.setUint32(560, n, true);
  dv.setUint32(564, spec.eventBufferSize ?? 0, true);
  return buf;
}

/** The line fd the kernel filled into a request buffer after GPIO_V2_GET_LINE_IOCTL. */
export function decodeLineRequestFd(buf: Uint8Array): number {
  expectSize(buf, SIZEOF.lineRequest, "gpio_v2_line_request");
  return view(buf).getInt32(588, true);
}

export type EdgeKind = "rising" | "falling";

export interface LineEvent {
  timestampNs: bigint;
  edge: EdgeKind;
  offset: number;
  seqno: number;
  lineSeqno: number;
}

/**
 * struct gpio_v2_line_event { __aligned_u64 timestamp_ns; __u32 id; __u32 offset; __u32 seqno;
 * __u32 line_seqno; __u32 padding[6]; } — 48 bytes each. A read returns whole events; anything
 * else (a partial event, an unknown id) is a GpioDecodeError. Padding is ignored (reserved).
 */
export function decodeLineEvents(bytes: Uint8Array): LineEvent[] {
  if (bytes.length % SIZEOF.lineEvent !== 0) {
    throw new GpioDecodeError(`line events: ${bytes.length} bytes is not a multiple of ${SIZEOF.lineEvent}`);
  }
  const dv = view(bytes);
  const out: LineEvent[] = [];
  for (let at = 0; at < bytes.length; at += SIZEOF.lineEvent) {
    const id = dv.getUint32(at + 8, true);
    if (id !== LineEventId.RISING_EDGE && id !== LineEventId.FALLING_EDGE) {
      throw new GpioDecodeError(`line event: unknown id ${id}`);
    }
    out.push({
      timestampNs: dv.getBigUint64(at, true),
      edge: id === LineEventId.RISING_EDGE ? "rising" : "falling",
      offset: dv.getUint32(at + 12, true),
      seqno: dv.getUint32(at + 16, true),
      lineSeqno: dv.getUint32(at + 20, true),
    });
  }
  return out;
}

/** The inverse of decodeLineEvents (for tests and simulations). */
export function encodeLineEvent(e: LineEvent): Uint8Array {
  const buf = new Uint8Array(SIZEOF.lineEvent);
  const dv = view(buf);
  dv.setBigUint64(0, e.timestampNs, true);
  dv.setUint32(8, e.edge === "rising" ? LineEventId.RISING_EDGE : LineEventId.FALLING_EDGE, true);
  dv.setUint32(12, e.offset, true);
  dv.setUint32(16, e.seqno, true);
  dv.setUint32(20, e.lineSeqno, true);
  return buf;
}
