/**
 * Calls from the device into Qubes (`qubes-air-agent call`, like qrexec-client-vm): a unix socket
 * (mode 0600) where a local client sends
 *
 *   u16 BE length | strict CBOR {target, service, arg} | stdin bytes ... (half-close = stdin EOF)
 *
 * and reads back exactly what the vchan channel carries (call-protocol.ts output messages). The
 * agent opens a channel on the current host session with the request (source = this device)
 * and bridges bytes both ways, one chunk at a time (credit and socket backpressure bound memory).
 * Without a session the client gets stderr "qubes-air-agent: not connected to sys-remote" and 125.
 * Must never: send a request whose names were not validated, or buffer a whole stream.
 */
import { dirname } from "node:path";
import { answerWithoutCall, bridgeSocket } from "../../calls/socket-bridge.ts";
import { encodeMessage, fields, MessageReader, text } from "../../calls/socket-messages.ts";
import { ProtocolError } from "../../core/errors.ts";
import { EXIT_PROBLEM, encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import { isArgument, isCallTarget, isServiceName } from "../../core/qrexec/names.ts";
import type { Channel } from "../../core/vchan/channel.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import { platform } from "../../platform/index.ts";
import type { Listener } from "../../platform/platform.ts";
import type { ByteStream } from "../../transport/transport.ts";
import { errorCode, type Log } from "../log.ts";
import type { SessionManager } from "./sessions.ts";

export const NOT_CONNECTED = "qubes-air-agent: not connected to sys-remote\n";

export interface LocalCall {
  readonly target: string;
  readonly service: string;
  readonly arg: string;
}

export function encodeLocalHeader(call: LocalCall): Uint8Array {
  return encodeMessage("request", { target: call.target, service: call.service, arg: call.arg });
}

/** Parses the request map; null when it is not exactly {target, service, arg} with valid names. */
function parseLocalCall(m: CborMap): LocalCall | null {
  try {
    fields(m, ["target", "service", "arg"]);
    const call = { target: text(m, "target"), service: text(m, "service"), arg: text(m, "arg") };
    return isCallTarget(call.target) && isServiceName(call.service) && isArgument(call.arg) ? call : null;
  } catch (error) {
    if (error instanceof ProtocolError) return null;
    throw error;
  }
}

export async function serveLocalSocket(
  path: string,
  sessions: SessionManager,
  self: string,
  log: Log,
): Promise<Listener> {
  const dir = dirname(path);
  if (!(await platform.stat(dir))) await platform.mkdirp(dir, 0o700);
  const listener = await platform.unixListen(path, (s) => void bridge(s, sessions, self, log), {
    mode: 0o600,
  });
  log("listening", { socket: path });
  return listener;
}

async function bridge(stream: ByteStream, sessions: SessionManager, self: string, log: Log): Promise<void> {
  const reader = new MessageReader(stream, "request");
  let call: LocalCall | null = null;
  try {
    const m = await reader.next();
    call = m && parseLocalCall(m);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
  }
  if (!call) {
    log("call-out-refused", { code: "schema" });
    await answerWithoutCall(stream, EXIT_PROBLEM, "qubes-air-agent: invalid call request");
    return;
  }
  const fieldsLogged = { target: call.target, service: `${call.service}+${call.arg}` };
  const current = sessions.current();
  if (!current) {
    log("call-out", { ...fieldsLogged, status: "not-connected" });
    await answerWithoutCall(stream, EXIT_PROBLEM, NOT_CONNECTED);
    return;
  }
  let channel: Channel;
  try {
    channel = current.vchan.open(encodeCallRequest({ source: self, ...call }), "device call");
  } catch (error) {
    log("call-out", { ...fieldsLogged, code: errorCode(error) });
    await answerWithoutCall(stream, EXIT_PROBLEM, NOT_CONNECTED);
    return;
  }
  log("call-out", fieldsLogged);
  await bridgeSocket(stream, reader.takeRest(), channel);
}
