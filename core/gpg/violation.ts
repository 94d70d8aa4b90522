/**
 * A filtered split-gpg2 client line (assuan-commands.ts, assuan-keys.ts, assuan-filter.ts): a
 * ProtocolError "gpg-filtered" with our own finer reason and, when it was one from our table,
 * the command's name.
 * Must never: carry any of the client's bytes (the reason and command are our constants).
 */
import { ProtocolError } from "../errors.ts";

export type ViolationCode =
  | "line-too-long"
  | "command-not-allowed"
  | "bad-arguments"
  | "bad-keygrip"
  | "unknown-key"
  | "primary-key"
  | "bad-hash"
  | "bad-nonce"
  | "no-key-set"
  | "no-hash-set"
  | "option-not-allowed"
  | "unexpected-inquire"
  | "inquire-not-allowed"
  | "inquire-second-data"
  | "inquire-no-data"
  | "bad-ciphertext";

export class Violation extends ProtocolError {
  constructor(
    readonly reason: ViolationCode,
    readonly command?: string,
  ) {
    super("gpg-filtered", command ? `${reason} (${command})` : reason);
  }
}
