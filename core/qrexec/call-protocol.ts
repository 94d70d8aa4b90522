/**
 * qrexec calls over a vchan channel (DESIGN.md "The link", step 5; qubes-remote-qrexec.md §2
 * "Data phase"). A call is one channel:
 *
 *   OPEN metadata (strict CBOR)  {v: 1, source, target, service, arg}
 *   caller -> callee             raw stdin bytes; the channel's EOF is stdin's EOF
 *   callee -> caller             messages: type u8 | length u32 BE | payload
 *       STDOUT 1, STDERR 2       payload = data; a zero-length payload is that stream's EOF
 *       EXIT   3                 payload = 1 byte exit status, after both output EOFs; then EOF
 *
 * Exit statuses follow qrexec: the service's own code, 128+signal, 126 refused (policy),
 * 127 no such service, 125 a qrexec problem (the link or the relay failed).
 * Must never: accept an EXIT before both output streams ended, a second EXIT, data after EOF,
 * or a payload above MAX_OUTPUT_CHUNK.
 */

import { ByteQueue } from "../byte-queue.ts";
import { EXIT } from "../cli/exit-codes.ts";
import { ProtocolError } from "../errors.ts";
import { type CborValue, decodeCbor, encodeCbor } from "../wire/cbor.ts";
import { VCHAN_MAX_CHUNK } from "../wire/limits.ts";
import { isArgument, isCallTarget, isQubeName, isServiceName, SERVICE_AND_ARG_MAX } from "./names.ts";

export const EXIT_PROBLEM = EXIT.CALL_PROBLEM;
export const EXIT_REFUSED = EXIT.REFUSED;
export const EXIT_NOT_FOUND = EXIT.NO_SERVICE;
/** A caller whose stdout reader went away (EPIPE) ends as SIGPIPE would (calls/caller.ts). */
export const EXIT_SIGPIPE = EXIT.SIGPIPE;

export const OutputType = { STDOUT: 1, STDERR: 2, EXIT: 3 } as const;
export type OutputType = (typeof OutputType)[keyof typeof OutputType];

export const OUTPUT_HEADER_BYTES = 5;
/** One output message fits one vchan chunk, so relaying never splits or joins messages. */
export const MAX_OUTPUT_CHUNK = VCHAN_MAX_CHUNK - OUTPUT_HEADER_BYTES;

export interface CallRequest {
  /** The calling qube (host -> device: the Qubes caller; device -> host: ignored, see below). */
  readonly source: string;
  /** host -> device: the RemoteVM name; device -> host: the Qubes target (a name or keyword). */
  readonly target: string;
  readonly service: string;
  readonly arg: string;
}

export function encodeCallRequest(r: CallRequest): Uint8Array {
  return encodeCbor({ v: 1, source: r.source, target: r.target, service: r.service, arg: r.arg });
}

/**
 * Strict: exactly these fields, each valid by qrexec's rules. The host never trusts a device's
 * `source` (it uses the RemoteVM the session belongs to); the device checks `source` as a name.
 */
export function decodeCallRequest(meta: Uint8Array): CallRequest {
  let value: CborValue;
  try {
    value = decodeCbor(meta);
  } catch {
    throw new ProtocolError("schema", "call request is not strict CBOR");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ProtocolError("schema", "call request is not a map");
  }
  const keys = Object.keys(value).sort().join(",");
  if (keys !== "arg,service,source,target,v" || value.v !== 1)
    throw new ProtocolError("schema", "call request fields");
  const { source, target, service, arg } = value;
  if (
    typeof source !== "string" ||
    typeof target !== "string" ||
    typeof service !== "string" ||
    typeof arg !== "string" ||
    !isQubeName(source) ||
    !isCallTarget(target) ||
    !isServiceName(service) ||
    !isArgument(arg)
  ) {
    throw new ProtocolError("schema", "call request names");
  }
  // qrexec's own bound on SERVICE+ARG (names.ts); without it an argument up to the chunk size
  // (64 KiB) would pass, and be logged whole.
  if (service.length + 1 + arg.length > SERVICE_AND_ARG_MAX)
    throw new ProtocolError("schema", "service+arg too long");
  return { source, target, service, arg };
}

export function encodeOutput(type: OutputType, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(OUTPUT_HEADER_BYTES + payload.length);
  out.set(encodeOutputHeader(type, payload.length), 0);
  out.set(payload, OUTPUT_HEADER_BYTES);
  return out;
}

/** The header alone of encodeOutput(type, payload of `length` bytes), for a writer that joins it. */
export function encodeOutputHeader(type: OutputType, length: number): Uint8Array {
  const header = new Uint8Array(OUTPUT_HEADER_BYTES);
  header[0] = type;
  new DataView(header.buffer).setUint32(1, length, false);
  return header;
}

export function encodeExit(status: number): Uint8Array {
  return encodeOutput(OutputType.EXIT, Uint8Array.of(status & 0xff));
}

export type OutputEvent =
  | { readonly type: "stdout" | "stderr"; readonly data: Uint8Array }
  | { readonly type: "stdout-eof" | "stderr-eof" }
  | { readonly type: "exit"; readonly status: number };

/**
 * Streaming decoder of the callee -> caller direction. push() bytes as they arrive, then take
 * events with next() until undefined; end() at the channel's EOF checks that the call finished.
 */
export class OutputReader {
  private readonly held = new ByteQueue();
  private stdoutOpen = true;
  private stderrOpen = true;
  private exited = false;

  push(chunk: Uint8Array): void {
    this.held.push(chunk);
  }

  next(): OutputEvent | undefined {
    if (this.held.length < OUTPUT_HEADER_BYTES) return undefined;
    const head = this.held.peek();
    const type = head[0];
    const length = new DataView(head.buffer, head.byteOffset, 5).getUint32(1, false);
    if (length > MAX_OUTPUT_CHUNK) throw new ProtocolError("frame-too-large", "call output");
    if (this.exited) throw new ProtocolError("unexpected-message", "output after exit");
    if (this.held.length < OUTPUT_HEADER_BYTES + length) return undefined;
    const payload = this.held.take(OUTPUT_HEADER_BYTES + length).subarray(OUTPUT_HEADER_BYTES);
    switch (type) {
      case OutputType.STDOUT:
      case OutputType.STDERR: {
        const stdout = type === OutputType.STDOUT;
        if (!(stdout ? this.stdoutOpen : this.stderrOpen))
          throw new ProtocolError("channel-state", "data after EOF");
        if (length > 0) return { type: stdout ? "stdout" : "stderr", data: payload };
        if (stdout) this.stdoutOpen = false;
        else this.stderrOpen = false;
        return { type: stdout ? "stdout-eof" : "stderr-eof" };
      }
      case OutputType.EXIT:
        if (length !== 1 || this.stdoutOpen || this.stderrOpen) {
          throw new ProtocolError("unexpected-message", "exit before output ended");
        }
        this.exited = true;
        return { type: "exit", status: payload[0]! };
      default:
        throw new ProtocolError("frame-malformed", "call output type");
    }
  }

  /** At the channel's EOF: true when an exit status arrived (else the call ended abnormally). */
  get finished(): boolean {
    return this.exited && this.held.length === 0;
  }
}
