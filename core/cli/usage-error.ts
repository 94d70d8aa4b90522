/**
 * The one usage-error type of every qubes-air CLI: a mistake in the command line. Commands throw
 * it with a message saying what is wrong; the dispatcher (platform/cli/dispatch.ts) prints
 * "<prog> <cmd>: <message>", the command's usage line and "Run: <prog> <cmd> --help", and exits
 * with EXIT.USAGE. A ConfigError, since it is an operator fault like a bad configuration file.
 * Must never: carry peer-supplied bytes (it is shown to the operator as is).
 */
import { ConfigError } from "../errors.ts";
import { EXIT } from "./exit-codes.ts";

export class UsageError extends ConfigError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}
