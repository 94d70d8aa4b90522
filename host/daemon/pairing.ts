/**
 * Pairing, run inside the daemon (socket op "pair") so the new remote's session is adopted at
 * once: `Noise_XXpsk3` with the device's one-time 32-byte token, or `Noise_XX` plus the 6-digit
 * code, which the CLI shows and the user confirms ({event:"code"} out, {op:"confirm"} back).
 * The code is known only once the device's reveal opened its commitment (commit, then reveal:
 * core/session/pairing-code.ts); a device whose code pairing is locked says for how long.
 * The agent's static key learned here is what later reconnects pin.
 * Must never: store a remote whose code the user did not confirm, replace an existing remote,
 * or leave the transport open on failure.
 */

import { fields, optionalText, text } from "../../calls/socket-messages.ts";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { ConfigError, ProtocolError } from "../../core/errors.ts";
import { isQubeName } from "../../core/qrexec/names.ts";
import { type Connected, connectAsInitiator } from "../../core/session/establish.ts";
import { PairingLockedError } from "../../core/session/handshake.ts";
import { lockedText } from "../../core/session/pairing-code.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import { HANDSHAKE_TIMEOUT_MS } from "../../core/wire/limits.ts";
import type { ByteStream } from "../../transport/transport.ts";
import { isLabel, LABELS } from "./enrolments.ts";
import type { LinkContext } from "./link-context.ts";
import { tuningFor } from "./link-context.ts";
import {
  isUsbSerial,
  isZone,
  normalizeMac,
  nowIso,
  parseTransport,
  type RemoteEntry,
  type TransportSpec,
} from "./registry.ts";
import { locateSerial, openTransport } from "./transport-open.ts";

export interface PairRequest {
  readonly name: string;
  readonly zone: string;
  readonly transport: TransportSpec;
  readonly token?: Uint8Array;
  readonly usbSerial?: string;
  readonly mac?: string;
  /** The RemoteVM's label when the daemon registers it in dom0 (default gray). */
  readonly label?: string;
}

/** A device answered the handshake but did not accept its token: trying it again is futile. */
export class TokenRefused extends ConfigError {}

export interface PairConversation {
  /** Shows the code to the user; resolves with their verdict (false if they went away). */
  confirmCode(code: string): Promise<boolean>;
}

export interface Paired {
  readonly entry: RemoteEntry;
  readonly connected: Connected;
  readonly stream: ByteStream;
}

/** Checks a socket "pair" request; ConfigError (shown to the user) when a value is wrong. */
export function parsePairRequest(m: CborMap): PairRequest {
  fields(m, ["op", "name", "zone", "transport"], ["token", "code", "usbSerial", "mac", "label"]);
  const name = text(m, "name");
  if (!isQubeName(name)) {
    throw new ConfigError("the name must be a qube name: a letter, then letters, digits, _ . - (at most 31)");
  }
  const zone = text(m, "zone");
  if (!isZone(zone)) throw new ConfigError("the zone must be 1-32 of a-z 0-9 _ . - (e.g. usb, lan, cloud)");
  const transport = parseTransport(m.transport, "the transport");
  const token = m.token;
  if (token !== undefined && !(token instanceof Uint8Array && token.length === 32)) {
    throw new ConfigError("the token must be 32 bytes (64 hex digits)");
  }
  if ((token === undefined) === (m.code !== true))
    throw new ConfigError("give exactly one of a token or --code");
  const usbSerial = optionalText(m, "usbSerial");
  if (usbSerial !== undefined && !isUsbSerial(usbSerial)) throw new ConfigError("bad USB serial");
  const macText = optionalText(m, "mac");
  const mac = macText === undefined ? undefined : normalizeMac(macText);
  if (mac === null) throw new ConfigError("the MAC must look like aa:bb:cc:dd:ee:ff");
  const label = optionalText(m, "label");
  if (label !== undefined && !isLabel(label))
    throw new ConfigError(`the label must be one of ${LABELS.join(", ")}`);
  return {
    ...(label ? { label } : {}),
    name,
    zone,
    transport,
    ...(token ? { token } : {}),
    ...(usbSerial ? { usbSerial } : {}),
    ...(mac ? { mac } : {}),
  };
}

export async function pair(ctx: LinkContext, req: PairRequest, talk: PairConversation): Promise<Paired> {
  const draft = {
    name: req.name,
    zone: req.zone,
    transport: req.transport,
    ...(req.usbSerial ? { usbSerial: req.usbSerial } : {}),
    ...(req.mac ? { mac: req.mac } : {}),
  };
  const serialPath = "serial" in req.transport ? await locateSerial(draft, ctx.byIdDir) : null;
  if ("serial" in req.transport && serialPath === null) {
    throw new ConfigError(
      "the serial device is not present: plug it in and attach it to this qube (qvm-usb)",
    );
  }
  const opened = await openTransport(req.transport, serialPath);
  const connected = await connectAsInitiator(
    {
      link: opened.link,
      resolver: ctx.resolver,
      staticKey: ctx.staticKey,
      version: ctx.version,
      suites: ctx.suites,
      mode: req.token ? "pair-psk" : "pair-code",
      ...(req.token ? { token: req.token } : {}),
    },
    tuningFor(ctx, (channel, meta) => ctx.onIncoming(req.name, channel, meta)),
  ).catch((error) => {
    throw codePairingError(error);
  });
  if (connected.established.mode === "pair-code") {
    const approved = await talk.confirmCode(connected.established.pairingCode!).catch(() => false);
    if (!approved) {
      connected.session.close();
      throw new ConfigError("pairing cancelled: the code was not confirmed here");
    }
    try {
      await connected.session.confirmPairing(true);
    } catch {
      connected.session.close();
      throw new ConfigError("the device did not confirm the code (its user refused, or it went away)");
    }
  }
  // The responder checks the last handshake message (and the token in it) after we sent it:
  // only its answer to a ping shows that it accepted the pairing.
  const accepted = await Promise.race([
    connected.session.ping().then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((r) => setTimeout(() => r(false), HANDSHAKE_TIMEOUT_MS).unref?.()),
  ]);
  if (!accepted) {
    connected.session.close();
    throw req.token
      ? new TokenRefused(
          "the device did not accept the pairing: the token is wrong or was already used (make a new one)",
        )
      : new ConfigError("the device did not accept the pairing");
  }
  const now = nowIso();
  const entry: RemoteEntry = {
    ...draft,
    agentKey: connected.established.peerKey,
    pairingId: connected.established.pairingId,
    pairedAt: now,
    lastSeen: now,
  };
  return { entry, connected, stream: opened.stream };
}

/** The two code pairing refusals the user must read in words; anything else as it was. */
function codePairingError(error: unknown): unknown {
  if (error instanceof PairingLockedError) {
    return new ConfigError(
      `the device refused: ${lockedText(error.minutes)} (try again then, or pair with a token)`,
      EXIT.FAILURE,
    );
  }
  if (error instanceof ProtocolError && error.code === "pairing-commitment") {
    return new ConfigError(
      "the device's reveal did not match its commitment: something between here and the device " +
        "is tampering with the pairing; nothing was stored",
      EXIT.FAILURE,
    );
  }
  return error;
}
