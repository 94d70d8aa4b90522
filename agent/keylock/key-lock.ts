/**
 * The device's key lock (docs/key-lock.md): the split-GPG secret subkeys are kept on the card
 * only sealed under the PIN (sealed.ts). `unlock(pin)` counts the attempt on disk, opens the
 * sealed file and writes the served home, keys included, into a directory on a RAM filesystem
 * (config keyLock.unlockedHome, default under /run); the split-GPG services then serve that home.
 * It locks again (gpg-agent killed, the RAM copy overwritten and removed) keyLock.idleSeconds
 * after the last split-GPG connection started or ended (one held open does not keep it open),
 * when no host has been connected for keyLock.unplugGraceSeconds, and when the agent stops. keyLock.maxAttempts wrong PINs in a row destroy the sealed files.
 *
 * Checks run one at a time (a queue), so parallel guesses cannot race the counter.
 * Must never: write the opened key to a disk-backed directory, check a PIN whose attempt is not
 * on disk, keep the opened key after a lock, or say anything about a PIN but right/wrong/left.
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { Service } from "../../core/qrexec/services.ts";
import type { KeyLockConfig } from "../config.ts";
import type { Log } from "../log.ts";
import type { AuditWriter } from "../services/audit/log.ts";
import { capture } from "../services/gpg/gpg-tools.ts";
import { AttemptCounter } from "./attempts.ts";
import { destroyFile, destroyTree, type LockFiles, lockFilesOf, onRamFs, readPrivateKeys } from "./files.ts";
import { SealedFileError, unseal, WrongPinError } from "./sealed.ts";

export type LockState = "locked" | "unlocked" | "wiped";

export type UnlockResult =
  | { readonly kind: "unlocked" }
  | { readonly kind: "already-unlocked" }
  | { readonly kind: "wrong-pin"; readonly attemptsLeft: number }
  | { readonly kind: "wiped"; readonly maxAttempts: number }
  | { readonly kind: "unusable"; readonly why: string };

export interface KeyLockDeps {
  /** The served home on the card: public keyring and trust, no secret keys. */
  readonly gnupgHome: string;
  readonly config: KeyLockConfig;
  readonly audit: AuditWriter;
  readonly log: Log;
  readonly gpgconf?: string;
}

/** A split-GPG connection's hold on the opened home: the idle timer waits until it is released. */
export interface KeyUse {
  readonly home: string;
  release(): void;
}

export class KeyLock {
  private state: LockState;
  private queue: Promise<unknown> = Promise.resolve();
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private unplugTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly files: LockFiles;

  private constructor(
    private readonly d: KeyLockDeps,
    private readonly counter: AttemptCounter,
  ) {
    this.files = lockFilesOf(d.gnupgHome);
    this.state = counter.state.wiped ? "wiped" : "locked";
  }

  /**
   * The lock for this home if gpg-setup sealed its key (or a wipe left its mark), else null: the
   * home is served as it is (an unprotected key; the agent logs that). Whatever an earlier run
   * left in the unlocked directory is destroyed first: a restart comes up locked.
   */
  static async open(d: KeyLockDeps): Promise<KeyLock | null> {
    const files = lockFilesOf(d.gnupgHome);
    const counter = await AttemptCounter.open(files.attempts);
    const sealed = await fsp.stat(files.sealed).then(
      () => true,
      () => false,
    );
    if (!sealed && !counter.state.wiped) return null;
    const lock = new KeyLock(d, counter);
    await lock.clearUnlocked();
    // A secret key put into the served home after sealing (a later gpg --import there) is on
    // the card in the clear: the lock cannot protect it, so say so at every start.
    const plain = await readPrivateKeys(d.gnupgHome).catch(() => new Map());
    if (plain.size > 0)
      d.log("key-plaintext-on-card", {
        home: d.gnupgHome,
        files: plain.size,
        fix: "run gpg-setup --pin again to seal it",
      });
    if (!sealed && lock.state !== "wiped") lock.state = "wiped";
    return lock;
  }

  get current(): LockState {
    return this.state;
  }

  /**
   * The opened home for one connection, or null while locked. A connection's start and end
   * restart the idle time; a connection held open does not stop it. It used to: a client qube
   * that opened a qubes.Gpg2 connection and sent nothing kept the key open for as long as the
   * device stayed plugged in (red team K1, docs/threat-model.md). A real request (one press)
   * takes far less than keyLock.idleSeconds; one still open when it runs out loses its home.
   */
  use(): KeyUse | null {
    if (this.state !== "unlocked") return null;
    this.startIdle();
    let released = false;
    return {
      home: this.d.config.unlockedHome,
      release: () => {
        if (released) return;
        released = true;
        if (this.state === "unlocked") this.startIdle();
      },
    };
  }

  /** Checks a PIN sent by `source` (the call's source, for the audit log). */
  unlock(pin: string, source: string): Promise<UnlockResult> {
    const run = this.queue.then(() => this.check(pin, source));
    this.queue = run.catch(() => {});
    return run;
  }

  private async check(pin: string, source: string): Promise<UnlockResult> {
    const { config, log } = this.d;
    if (this.state === "wiped") return { kind: "wiped", maxAttempts: config.maxAttempts };
    if (this.state === "unlocked") return { kind: "already-unlocked" };
    await fsp.mkdir(parentOf(config.unlockedHome), { recursive: true, mode: 0o700 }).catch(() => {});
    if (!(await onRamFs(parentOf(config.unlockedHome)).catch(() => false))) {
      log("key-unlock-refused", { why: "unlockedHome is not on tmpfs", dir: config.unlockedHome });
      return {
        kind: "unusable",
        why: "the device's keyLock.unlockedHome is not on a RAM filesystem (tmpfs)",
      };
    }
    // Counted on disk before the check: a power cut now still costs the attempt.
    const failures = await this.counter.begin();
    if (failures > config.maxAttempts) return this.wipe(failures, source);
    let keys: Map<string, Uint8Array>;
    try {
      keys = await unseal(await fsp.readFile(this.files.sealed), pin);
    } catch (error) {
      if (error instanceof WrongPinError) {
        await this.audit(
          source,
          "unlock",
          "denied",
          "wrong-pin",
          `attempt ${failures} of ${config.maxAttempts}`,
        );
        log("key-unlock-wrong-pin", { attempt: failures, max: config.maxAttempts });
        if (failures >= config.maxAttempts) return this.wipe(failures, source);
        return { kind: "wrong-pin", attemptsLeft: config.maxAttempts - failures };
      }
      if (error instanceof SealedFileError) {
        log("key-unlock-unusable", { why: error.message });
        return { kind: "unusable", why: "the sealed key file on the device is damaged" };
      }
      throw error;
    }
    await this.counter.succeeded();
    try {
      await this.materialize(keys);
    } catch (error) {
      await this.clearUnlocked();
      throw error;
    } finally {
      for (const k of keys.values()) k.fill(0);
    }
    this.state = "unlocked";
    await this.audit(source, "unlock", "allowed", "ok", "");
    log("key-unlocked", { home: config.unlockedHome, idle_s: config.idleSeconds });
    this.startIdle();
    return { kind: "unlocked" };
  }

  /** Copies the served home's public files and writes the opened keys, all inside the RAM dir. */
  private async materialize(keys: Map<string, Uint8Array>): Promise<void> {
    const dst = this.d.config.unlockedHome;
    await this.clearUnlocked();
    await fsp.mkdir(dst, { recursive: true, mode: 0o700 });
    await fsp.chmod(dst, 0o700);
    if (!(await onRamFs(dst))) throw new Error("unlockedHome is not on tmpfs");
    for (const e of await fsp.readdir(this.d.gnupgHome, { withFileTypes: true })) {
      if (e.isFile()) await fsp.copyFile(join(this.d.gnupgHome, e.name), join(dst, e.name));
    }
    const priv = join(dst, "private-keys-v1.d");
    await fsp.mkdir(priv, { mode: 0o700 });
    for (const [name, data] of keys) await fsp.writeFile(join(priv, name), data, { mode: 0o600, flag: "wx" });
  }

  /** Locks now (idle, unplug, shutdown, or asked); a no-op unless unlocked. */
  async lock(reason: "idle" | "unplugged" | "shutdown" | "requested"): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.state !== "unlocked") return;
      this.state = "locked";
      this.stopIdle();
      await this.clearUnlocked();
      await this.audit("", "lock", "allowed", "ok", reason);
      this.d.log("key-locked", { reason });
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** A host link came up or went down (`anyUp`: is some host still connected). */
  linkChanged(anyUp: boolean): void {
    if (anyUp) {
      if (this.unplugTimer) clearTimeout(this.unplugTimer);
      this.unplugTimer = null;
      return;
    }
    if (this.state !== "unlocked" || this.unplugTimer) return;
    this.unplugTimer = setTimeout(() => {
      this.unplugTimer = null;
      void this.lock("unplugged");
    }, this.d.config.unplugGraceSeconds * 1000);
    this.unplugTimer.unref?.();
  }

  async close(): Promise<void> {
    if (this.unplugTimer) clearTimeout(this.unplugTimer);
    this.unplugTimer = null;
    await this.lock("shutdown");
    this.stopIdle();
  }

  private startIdle(): void {
    this.stopIdle();
    this.idleTimer = setTimeout(() => void this.lock("idle"), this.d.config.idleSeconds * 1000);
    this.idleTimer.unref?.();
  }

  private stopIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private async wipe(failures: number, source: string): Promise<UnlockResult> {
    const destroyed = [this.files.sealed, this.files.primarySealed];
    for (const f of destroyed) await destroyFile(f).catch(() => false);
    await this.counter.markWiped();
    this.state = "wiped";
    await this.audit(
      source,
      "wipe",
      "refused",
      "wiped",
      `${failures} wrong PINs (max ${this.d.config.maxAttempts})`,
    );
    this.d.log("key-wiped", { failures, max: this.d.config.maxAttempts });
    return { kind: "wiped", maxAttempts: this.d.config.maxAttempts };
  }

  /** Stops the opened home's gpg-agent (it holds the keys in memory) and destroys the home. */
  private async clearUnlocked(): Promise<void> {
    const home = this.d.config.unlockedHome;
    const there = await fsp.stat(home).then(
      () => true,
      () => false,
    );
    if (!there) return;
    await capture([this.d.gpgconf ?? "gpgconf", "--homedir", home, "--kill", "gpg-agent"]).catch(() => null);
    await destroyTree(home);
  }

  private async audit(
    client: string,
    operation: string,
    decision: string,
    result: string,
    detail: string,
  ): Promise<void> {
    await this.d.audit
      .append({ client, service: Service.Unlock, operation, key: "", decision, result, detail })
      .catch(() => this.d.log("audit-append-failed", { service: Service.Unlock }));
  }
}

function parentOf(p: string): string {
  const i = p.replace(/\/+$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}
