/**
 * The one table of exit statuses for every qubes-air program: the host CLI `qubes-air`, the
 * device agent `qubes-air-agent`, the image builder and the flasher. docs/host.md, docs/agent.md,
 * docs/images.md and docs/flashing.md point here instead of listing codes of their own.
 *
 * The same fault exits with the same status wherever it happens: a bad key file, a bad
 * configuration file or a bad command line is USAGE (2) on the device and in sys-remote alike,
 * because in each case the operator has to change what they gave before a retry can succeed.
 * FAILURE (1) is for what was tried and did not work (a refusal, an I/O error, a broken chain).
 *
 * Pure data (core/: no I/O). Must never: give one status two meanings, or let a program exit
 * with a number that is not in this table (except `call`, which passes the remote service's own
 * status through, as qrexec-client-vm does).
 */

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  VERIFY_FAILED: 3,
  CALL_PROBLEM: 125,
  REFUSED: 126,
  NO_SERVICE: 127,
  INTERRUPTED: 130,
  SIGPIPE: 141,
} as const;

export type ExitName = keyof typeof EXIT;
export type ExitStatus = (typeof EXIT)[ExitName];

/** Why a program exits with each status; the docs quote these lines. */
export const EXIT_REASONS: { readonly [K in ExitName]: string } = {
  OK: "done",
  FAILURE:
    "tried and failed: refused, not confirmed, an I/O error, a broken audit chain (the message says why)",
  USAGE:
    "fix what you gave: the command line (UsageError), or a configuration, key or state file (ConfigError); nothing was done",
  VERIFY_FAILED: "the flasher wrote the image but read back different bytes (a faulty or fake card)",
  CALL_PROBLEM: "qrexec: the call could not be made (no daemon, no agent, no link, or the link broke)",
  REFUSED: "qrexec: refused by policy (the device's or dom0's)",
  NO_SERVICE: "qrexec: no such service",
  INTERRUPTED: "interrupted (Ctrl-C or SIGTERM): stopped cleanly, nothing half-done is left usable",
  SIGPIPE: "a caller's stdout reader went away (128 + SIGPIPE): output was lost, so never success",
};

const STATUSES: ReadonlySet<number> = new Set(Object.values(EXIT));

/** True for a status in the table. `call` may also return any remote status (0-255). */
export function isTableStatus(status: number): status is ExitStatus {
  return STATUSES.has(status);
}
