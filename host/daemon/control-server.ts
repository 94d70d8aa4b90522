/**
 * One connection on the daemon socket (framing: host/control-wire.ts; protocol: docs/host.md):
 *
 *   {op:"list"}                        -> {ok, remotes:[view...], prompts:[prompt...]}
 *   {op:"watch", remote, source, service}
 *                                      -> {ok}, then {event:"prompt", state, code, line} for each
 *                                         announcement of that device, client and service until
 *                                         the client closes (the relay: the caller's stderr)
 *   {op:"status"}                      -> {ok, version, pid, socket, stateDir, remotes, up}
 *   {op:"pair", name, zone, transport, token|code, usbSerial?, mac?}
 *                                      -> [{event:"code", code} <- {op:"confirm", approved}] -> {ok, ...}
 *   {op:"unpair", name, removeQube?}   -> {ok} | {ok:false, error}   removeQube: qvm-remove it in dom0 first
 *   {op:"enrol", name, zone, label, token, identity, ttlSeconds}
 *                                      -> {ok, name, expiresAt}       a pending enrolment (enroller.ts)
 *   {op:"call", remote, source, service, arg}  -> raw: stdin in, call output out (call-bridge.ts)
 *
 * A call that cannot run is answered as a finished call: 126 for a remote that is not paired
 * (like a qrexec refusal), 125 for a link that is down or a malformed request.
 * Must never: let a malformed request crash the daemon, or echo request bytes into a message.
 */

import { answerWithoutCall, bridgeSocket } from "../../calls/socket-bridge.ts";
import { encodeMessage, fields, MessageReader, text } from "../../calls/socket-messages.ts";
import { ConfigError, ProtocolError } from "../../core/errors.ts";
import { EXIT_PROBLEM, EXIT_REFUSED, encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import { isArgument, isQubeName, isServiceName } from "../../core/qrexec/names.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import { type ByteStream, TransportError } from "../../transport/transport.ts";
import { type PairConversation, type PairRequest, parsePairRequest } from "./pairing.ts";
import type { Watch } from "./prompts.ts";
import type { RemoteLink } from "./remote-link.ts";

/** Lines queued for one watcher that does not read: a relay reads them as they come. */
export const WATCH_QUEUE_MAX = 16;

export interface ControlApi {
  list(): CborMap[];
  /** The devices' prompts still waiting for a press (prompts.ts). */
  prompts(): CborMap[];
  /** Starts a watch; the function ends it; null when there are too many. */
  watch(w: Watch): (() => void) | null;
  status(): CborMap;
  link(name: string): RemoteLink | undefined;
  pair(req: PairRequest, talk: PairConversation): Promise<CborMap>;
  enrol(m: CborMap): Promise<CborMap>;
  unpair(name: string, removeQube: boolean): Promise<void>;
  log(message: string): void;
}

export async function serveConnection(sock: ByteStream, api: ControlApi): Promise<void> {
  const reader = new MessageReader(sock, "request");
  const answer = (m: CborMap) => sock.write(encodeMessage("answer", m));
  let request: CborMap | null;
  try {
    request = await reader.next();
  } catch {
    sock.close();
    return;
  }
  if (request === null) {
    sock.close();
    return;
  }
  try {
    switch (request.op) {
      case "call":
        return await serveCall(sock, reader, request, api);
      case "watch":
        return await serveWatch(sock, reader, request, api);
      case "list":
        fields(request, ["op"]);
        await answer({ ok: true, remotes: api.list(), prompts: api.prompts() });
        break;
      case "status":
        fields(request, ["op"]);
        await answer({ ok: true, ...api.status() });
        break;
      case "unpair":
        fields(request, ["op", "name"], ["removeQube"]);
        await api.unpair(text(request, "name"), request.removeQube === true);
        await answer({ ok: true });
        break;
      case "enrol":
        fields(request, ["op", "name", "zone", "label", "token", "identity", "ttlSeconds"]);
        await answer({ ok: true, ...(await api.enrol(request)) });
        break;
      case "pair": {
        const req = parsePairRequest(request);
        const talk: PairConversation = {
          async confirmCode(code) {
            await answer({ event: "code", code });
            const reply = await reader.next();
            if (reply === null) return false;
            fields(reply, ["op", "approved"]);
            return reply.op === "confirm" && reply.approved === true;
          },
        };
        await answer({ ok: true, ...(await api.pair(req, talk)) });
        break;
      }
      default:
        throw new ProtocolError("schema", "unknown op");
    }
  } catch (e) {
    await answer({ ok: false, error: describeError(e) }).catch(() => {});
  }
  await sock.closeWrite().catch(() => {});
  sock.close();
}

async function serveCall(
  sock: ByteStream,
  reader: MessageReader,
  m: CborMap,
  api: ControlApi,
): Promise<void> {
  const refuse = (status: number, message: string) =>
    answerWithoutCall(sock, status, `qubes-air: ${message}`);
  try {
    fields(m, ["op", "remote", "source", "service", "arg"]);
  } catch {
    return refuse(EXIT_PROBLEM, "malformed call request");
  }
  const { remote, source, service, arg } = m;
  if (
    typeof remote !== "string" ||
    typeof source !== "string" ||
    typeof service !== "string" ||
    typeof arg !== "string" ||
    !isQubeName(remote) ||
    !isQubeName(source) ||
    !isServiceName(service) ||
    !isArgument(arg)
  ) {
    return refuse(EXIT_REFUSED, "invalid name in the call request");
  }
  const link = api.link(remote);
  if (!link) return refuse(EXIT_REFUSED, `no remote qube named ${remote} is paired with this qube`);
  let channel: ReturnType<RemoteLink["openCall"]>;
  try {
    channel = link.openCall(encodeCallRequest({ source, target: remote, service, arg }));
  } catch (e) {
    const busy = e instanceof ProtocolError && e.code === "channel-limit";
    return refuse(EXIT_PROBLEM, busy ? `${remote}: too many calls at once` : `${remote} is not connected`);
  }
  if (!channel) return refuse(EXIT_PROBLEM, `${remote} is not connected (${link.state})`);
  await bridgeSocket(sock, reader.takeRest(), channel);
}

/** The relay's watch on its own call's prompts: held until the relay closes the socket. */
async function serveWatch(
  sock: ByteStream,
  reader: MessageReader,
  m: CborMap,
  api: ControlApi,
): Promise<void> {
  fields(m, ["op", "remote", "source", "service"]);
  const remote = text(m, "remote");
  const client = text(m, "source");
  const service = text(m, "service");
  if (!isQubeName(remote) || !isQubeName(client) || !isServiceName(service))
    throw new ProtocolError("schema", "invalid name in the watch request");
  let queued = 0;
  // {ok} goes first: the prompts already waiting are told as soon as the watch starts.
  let writing: Promise<unknown> = sock.write(encodeMessage("answer", { ok: true })).catch(() => {});
  const stop = api.watch({
    remote,
    client,
    service,
    tell: (e) => {
      if (queued >= WATCH_QUEUE_MAX) return; // the relay stalls: its caller misses a line, the journal has it
      queued++;
      writing = writing
        .then(() =>
          sock.write(
            encodeMessage("answer", { event: "prompt", state: e.event, code: e.code, line: e.line }),
          ),
        )
        .catch(() => {})
        .finally(() => queued--);
    },
  });
  if (stop === null) {
    await writing;
    await sock.write(encodeMessage("answer", { event: "full" })).catch(() => {});
    sock.close();
    return;
  }
  try {
    while ((await reader.next()) !== null) {} // nothing more is asked: EOF ends the watch
  } catch {
    // the relay went away
  } finally {
    stop();
    await writing;
    await sock.closeWrite().catch(() => {});
    sock.close();
  }
}

/** A message for the user: our own wording, never peer bytes. */
export function describeError(e: unknown): string {
  if (e instanceof ConfigError) return e.message;
  if (e instanceof TransportError) return e.message;
  if (e instanceof ProtocolError) {
    if (e.code === "handshake-psk")
      return "the device refused the token (wrong token, or it was already used)";
    if (e.code === "handshake-timeout") return "the device did not answer the handshake in time";
    if (e.code === "schema") return `bad request (${e.message})`;
    return `the handshake failed (${e.code})`;
  }
  return e instanceof Error ? `${e.name}: ${e.message}` : "unexpected failure";
}
