/**
 * The three kinds of failure (DESIGN.md "What every part does with bad input").
 *
 * - ProtocolError: a peer fault. Carries a fixed code and never any peer bytes; the session or
 *   channel that saw it ends.
 * - ConfigError: an operator fault. A clear message that says how to fix it, and an exit code.
 * - assert(): a bug in our own code. Throws AssertionError and is allowed to crash.
 *
 * This module must never format peer-supplied data into a message.
 */
import { EXIT } from "./cli/exit-codes.ts";

/** Fixed codes for peer faults. Stable strings: they appear in logs and tests, never on the wire. */
export type ProtocolErrorCode =
  | "frame-too-large"
  | "frame-truncated"
  | "frame-malformed"
  | "frame-crc"
  | "cbor-malformed"
  | "cbor-limit"
  | "cbor-noncanonical"
  | "schema"
  | "handshake-malformed"
  | "handshake-decrypt"
  | "handshake-unknown-key"
  | "handshake-replay"
  | "handshake-rate"
  | "handshake-timeout"
  | "handshake-psk"
  | "suite-mismatch"
  | "decrypt"
  | "replay"
  | "nonce-exhausted"
  | "unexpected-message"
  | "channel-limit"
  | "channel-unknown"
  | "channel-state"
  | "flow-control"
  | "keepalive-timeout"
  // A PING was written and nothing authenticated came back in PING_ANSWER_TIMEOUT_MS.
  | "ping-unanswered"
  | "link-lost"
  // pair-code (core/session/pairing-code.ts): a reveal that does not open the commitment; code
  // pairing locked on the device after too many failed attempts.
  | "pairing-commitment"
  | "pairing-locked"
  // A serial peer said in clear that it ended the session (core/wire/serial-frame.ts RESET).
  | "link-reset"
  // split-GPG (core/gpg): a filtered Assuan line, a bad CIPHERTEXT S-expression, a bad v1 request
  // header or frame, a refused v1 option or sub-option list, refused key-import data. Each error class there also keeps
  // its own finer reason.
  | "gpg-filtered"
  | "gpg-sexp"
  | "gpg-v1-wire"
  | "gpg-v1-options"
  // qubes.GpgImportKey (core/gpg/openpgp-import.ts): key data that is not public keys only.
  | "gpg-import";

export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  constructor(
    readonly code: ProtocolErrorCode,
    /** Our own wording about what was wrong, never text taken from the peer. */
    readonly detail?: string,
  ) {
    super(detail ? `${code}: ${detail}` : code);
  }
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    message: string,
    /** From core/cli/exit-codes.ts: USAGE (fix what you gave) unless the fault is a failure. */
    readonly exitCode: number = EXIT.USAGE,
  ) {
    super(message);
  }
}

export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function isProtocolError(e: unknown, code?: ProtocolErrorCode): e is ProtocolError {
  return e instanceof ProtocolError && (code === undefined || e.code === code);
}
