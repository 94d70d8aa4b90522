/**
 * The qrexec services qubes-air answers or calls, and their per-service limits: the one place
 * both sides take a service name from (the device's built-ins, the host CLI, the relay, the
 * default policy's tests). A name here is a wire fact: changing one breaks every deployed policy
 * that names it.
 */

/** qrexec service names, as they appear in policy and on the wire. */
export const Service = {
  /** File copy into ~/QubesIncoming/<source>/ (qfile format, core/qrexec/qfile.ts). */
  Filecopy: "qubes.Filecopy",
  /** qubes-air's copy from a device back to the caller (qfile format, sent by the device). */
  CopyFrom: "qubesair.CopyFrom",
  /** split-gpg2: the gpg-agent Assuan protocol, filtered (core/gpg/assuan-filter.ts). */
  Gpg2: "qubes.Gpg2",
  /** split-gpg v1: a gpg command line rebuilt from an allowlist (core/gpg/v1-*.ts). */
  Gpg: "qubes.Gpg",
  /**
   * split-SSH: the ssh-agent protocol, filtered (core/ssh/agent-protocol.ts): list identities and
   * sign, each signature confirmed on the device; nothing else (agent/services/ssh/).
   */
  SshAgent: "qubes.SshAgent",
  /** The device's hash-chained audit log, read whole (core/audit). */
  AuditLog: "qubesair.AuditLog",
  /** The relay in sys-remote: Qubes 4.3 RemoteVM transport_rpc. */
  NoiseProxy: "qubesair.NoiseProxy",
  /** The relay in sys-remote for Qubes 4.2, which has no RemoteVM. */
  Call: "qubesair.Call",
  /**
   * Device to sys-remote: a confirmation was asked for or decided (core/qrexec/announcement.ts).
   * sys-remote answers it itself; it never goes on to Qubes.
   */
  Announce: "qubesair.Announce",
  /**
   * A root shell on the device, for salt-ssh (`qubesctl`): stdin is the script. Denied by the
   * device's default policy; allowing it gives the caller the whole device (agent/services/root-shell.ts).
   */
  VMRootShell: "qubes.VMRootShell",
} as const;
export type Service = (typeof Service)[keyof typeof Service];

/** split-gpg v1 (qubes.Gpg) limits on the device; each can be lowered per deployment. */
export const GPG1_LIMITS = {
  /** Client-to-gpg data: far above any message signed or encrypted by hand. */
  maxInputBytes: 4 * 1024 ** 3,
  /** gpg-to-client bytes over all outputs: the same bound for decrypted output. */
  maxOutputBytes: 4 * 1024 ** 3,
  /** A whole request, from its first byte: a person confirms within this, or it is denied. */
  wallMs: 600_000,
  /** Until the 1028-byte option header is complete: a client that stalls here is not working. */
  headerMs: 30_000,
} as const;

/** qubes.SshAgent on the device. */
export const SSH_AGENT_LIMITS = {
  /**
   * One agent message: OpenSSH's own ssh-agent refuses more (AGENT_MAX_LEN, 256 KiB); a
   * userauth request or an SSHSIG blob (a hash, not the message) is a few hundred bytes.
   */
  maxMessageBytes: 256 * 1024,
  /** Keys the device's ssh-agent may list: a device holds a handful. */
  maxIdentities: 64,
  /**
   * Refused requests (add, remove, lock, unknown) one connection may send before it is closed:
   * `ssh-add -D` sends one; a client that keeps sending them is not a stock client.
   */
  maxRefusals: 8,
} as const;

/** The path list a qubesair.CopyFrom caller sends: thousands of paths, read before any file. */
export const COPY_FROM_REQUEST_MAX_BYTES = 64 * 1024;

/**
 * Distinct directories one qubesair.CopyFrom request may name on its paths' way: each is held
 * open until the copy ends, and the agent's descriptors are shared with every session.
 */
export const COPY_FROM_MAX_OPEN_DIRS = 256;

/** The audit log the host fetches: decades of records at a few hundred bytes each. */
export const AUDIT_LOG_MAX_BYTES = 256 * 1024 * 1024;

/**
 * qubes.Filecopy on the device (each can be set in the agent's config, "fileCopy"). The device's
 * state (keys, pinned hosts, the audit log) may share a filesystem with QubesIncoming, and the
 * default policy lets any caller copy files in: without these, a compromised sys-remote could fill
 * that filesystem and leave the audit log unable to record (then every approved operation is
 * refused, the device's own safe failure, but a denial of service).
 */
export const FILECOPY_LIMITS = {
  /** Data bytes in one copy: documents and packages to sign, not disk images. */
  maxBytes: 1024 ** 3,
  /** Entries in one copy (a directory counts twice, as in the stream): a source tree, not a flood. */
  maxFiles: 10_000,
  /** Free space a copy never takes, at least: room for years of audit records and key updates. */
  reserveBytes: 64 * 1024 ** 2,
  /** …or this share of the filesystem, if more (a big card keeps proportionally more). */
  reservePercent: 5,
} as const;
