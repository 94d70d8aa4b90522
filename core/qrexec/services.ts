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
   * split-gpg's key import: public keys only (core/gpg/openpgp-import.ts), into the served
   * keyring, after a press (agent/services/gpg/import-key-service.ts).
   */
  GpgImportKey: "qubes.GpgImportKey",
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
   * sys-remote to the device: the PIN that opens the device's sealed key (`qubes-air unlock`,
   * docs/key-lock.md). stdin is the PIN (core/keylock/pin.ts); exit 0 when unlocked.
   */
  Unlock: "qubesair.Unlock",
  /**
   * A root shell on the device, for salt-ssh (`qubesctl`): stdin is the script. Denied by the
   * device's default policy; allowing it gives the caller the whole device (agent/services/root-shell.ts).
   */
  VMRootShell: "qubes.VMRootShell",
  /**
   * An approver qube stands in for the press for one client's signatures (argument: the client;
   * stdin: `count N [SECONDS]`, `digest ALGO HEX [SECONDS]` or `revoke`; core/qrexec/approve-request.ts).
   * Denied by the device's default policy; a rule `qubesair.Approve +CLIENT APPROVER @anyvm allow`
   * turns it on for that pair (docs/device-policy.md "Unattended signing").
   */
  Approve: "qubesair.Approve",
  /**
   * sys-remote to dom0: register (or update, or remove) the RemoteVM named by the argument,
   * relayed by the caller through NoiseProxy (packaging/files/dom0/qubesair.RegisterRemote;
   * stdin: `register LABEL REMOTE_NAME` or `unregister`, one line). Replaces Admin API rights.
   */
  RegisterRemote: "qubesair.RegisterRemote",
} as const;
export type Service = (typeof Service)[keyof typeof Service];

/**
 * qubesair.RegisterRemote in dom0. The dom0 script holds its own copies (it is Python); a test
 * (test/integration/register-remote.test.ts) checks they match.
 */
export const REGISTER_REMOTE_LIMITS = {
  /** The one request line: "register" + a label + a 31-character name fit in far less. */
  maxRequestBytes: 128,
  /**
   * RemoteVMs one relay qube may have registered: far above a person's devices, and a bound on
   * how much a compromised sys-remote can add to dom0's qube list.
   */
  maxPerRelay: 64,
  /** The service's one-line answer, read by sys-remote ("refused: ..." names two qubes). */
  maxAnswerBytes: 512,
} as const;

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
  /**
   * Free inodes a copy never takes, at least (or reservePercent of the filesystem's inodes, if
   * more): 10,000 empty files cost no bytes but an inode each, and the device's state writes
   * (a temporary file renamed into place) need a free inode or fail closed.
   */
  reserveInodes: 2048,
} as const;

/**
 * qubesair.Approve: how far one approver's grant reaches. Every bound here holds even against a
 * compromised sys-remote that forges the approver's name (docs/threat-model.md "Approver qubes").
 */
export const APPROVE_LIMITS = {
  /** The request line: `digest sha512 <128 hex> 3600` is 151 bytes. */
  requestMaxBytes: 256,
  /** Until the request line is in: an approver sends one line at once. */
  readMs: 30_000,
  /** Signatures one count grant covers: one build's packages and metadata, not a season's. */
  maxCount: 100,
  /** A grant expires at the latest this long after it was given: one build's signing run. */
  maxSeconds: 3600,
  /** …and after this, when the approver names no time. */
  defaultSeconds: 600,
  /** Digest grants waiting per approver and client (each is used once): a build's artefacts. */
  maxDigests: 64,
  /**
   * A v1 (qubes.Gpg) signature is matched against a digest grant by the digest of its data,
   * read before the confirmation and held in memory: a build's signed file (.dsc, .changes, repo
   * metadata), not a disk image. Larger data gets no digest: the press decides.
   */
  prereadBytes: 32 * 1024 ** 2,
} as const;

/** qubes.GpgImportKey on the device. */
export const GPG_IMPORT_LIMITS = {
  /** Key data read, armored or binary: a well-signed public key is tens of KiB, a team's few MiB. */
  maxBytes: 8 * 1024 ** 2,
  /** Keys in one import: a keyring's worth, not a keyserver dump. */
  maxKeys: 100,
  /** Packets in one import: signatures dominate; a heavily signed key has a few thousand. */
  maxPackets: 50_000,
  /** Until the whole key data is in: a client that stalls here is not importing. */
  readMs: 60_000,
} as const;
