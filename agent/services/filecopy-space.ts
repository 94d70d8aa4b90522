/**
 * The free-space floor of qubes.Filecopy: before a received entry takes space, the filesystem it
 * lands on (statfs of its directory) and the one holding the agent's state, if another, must keep
 * at least max(reserveBytes, reservePercent of the filesystem) free after it, counting what other
 * copies in flight have reserved but not yet written. The same for inodes: every entry takes
 * one, and at least max(reserveInodes, reservePercent of the inodes) must stay free (a
 * filesystem without a fixed inode count, statfs f_files 0, has no inode floor). So files a
 * caller sends can never take the space or the inodes the audit log and the keys need.
 * Must never: let a reservation through when statfs fails (no answer is no space).
 */
import * as fsp from "node:fs/promises";
import { FILECOPY_LIMITS } from "../../core/qrexec/services.ts";

export interface SpaceFloor {
  readonly reserveBytes: number;
  readonly reservePercent: number;
  /** Default FILECOPY_LIMITS.reserveInodes. */
  readonly reserveInodes?: number;
}

/** The inode floor for a filesystem of `totalInodes` (0: no fixed count, no floor). */
export function floorInodes(totalInodes: bigint, f: SpaceFloor): bigint {
  if (totalInodes === 0n) return 0n;
  const share = (totalInodes * BigInt(Math.round(f.reservePercent * 100))) / 10_000n;
  const min = BigInt(f.reserveInodes ?? FILECOPY_LIMITS.reserveInodes);
  return share > min ? share : min;
}

/** The floor in bytes for a filesystem of `totalBytes`. */
export function floorBytes(totalBytes: bigint, f: SpaceFloor): bigint {
  const share = (totalBytes * BigInt(Math.round(f.reservePercent * 100))) / 10_000n;
  const min = BigInt(f.reserveBytes);
  return share > min ? share : min;
}

/** Whether `want` more bytes fit above the floor, given what is free and already promised. */
export function fitsAboveFloor(freeBytes: bigint, promised: bigint, want: bigint, floor: bigint): boolean {
  return freeBytes - promised - want >= floor;
}

/** Reservations of the copies in flight, per filesystem (st_dev); one per agent. */
export class SpaceGuard {
  private readonly promised = new Map<bigint, bigint>();
  /** Inodes promised per filesystem: one per reservation (each is one entry of a copy). */
  private readonly promisedInodes = new Map<bigint, bigint>();

  /**
   * Reserves `bytes` on the filesystem of `dir` if it stays above the floor there and, for
   * `alsoCheck` (the state dir) on another filesystem, that one is above its floor too.
   * Returns the release function, or null (refuse).
   */
  async reserve(
    dir: string,
    alsoCheck: string | null,
    bytes: bigint,
    f: SpaceFloor,
  ): Promise<(() => void) | null> {
    let dev: bigint;
    try {
      dev = (await fsp.stat(dir, { bigint: true })).dev;
    } catch {
      return null;
    }
    // Promise first, then look: two copies checking at once each see the other's share.
    this.promised.set(dev, (this.promised.get(dev) ?? 0n) + bytes);
    this.promisedInodes.set(dev, (this.promisedInodes.get(dev) ?? 0n) + 1n);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = (this.promised.get(dev) ?? 0n) - bytes;
      if (left > 0n) this.promised.set(dev, left);
      else this.promised.delete(dev);
      const inodes = (this.promisedInodes.get(dev) ?? 0n) - 1n;
      if (inodes > 0n) this.promisedInodes.set(dev, inodes);
      else this.promisedInodes.delete(dev);
    };
    try {
      const ok = await this.fits(dir, this.promised.get(dev)!, this.promisedInodes.get(dev)!, f);
      const other = alsoCheck === null ? null : (await fsp.stat(alsoCheck, { bigint: true })).dev;
      const stateOk = other === null || other === dev || (await this.fits(alsoCheck!, 0n, 0n, f));
      if (ok && stateOk) return release;
    } catch {}
    release();
    return null;
  }

  private async fits(
    path: string,
    promised: bigint,
    promisedInodes: bigint,
    f: SpaceFloor,
  ): Promise<boolean> {
    const s = await fsp.statfs(path, { bigint: true });
    const free = s.bavail * s.bsize;
    if (!fitsAboveFloor(free, promised, 0n, floorBytes(s.blocks * s.bsize, f))) return false;
    return s.files === 0n || fitsAboveFloor(s.ffree, promisedInodes, 0n, floorInodes(s.files, f));
  }
}
