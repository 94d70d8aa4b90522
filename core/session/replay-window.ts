/**
 * Receive-side replay window over explicit 64-bit counters: RFC 6479's sliding bitmap, as in
 * WireGuard's replay/replay.go (noise-transport.md §1.3, §7.7; DESIGN.md "The link, layer by
 * layer" 2). Used where frames carry their counter (serial), so frames may be lost or reordered.
 *
 * A counter is accepted if it is above the highest committed one, or within windowBits below it
 * and not committed before. The caller must:
 *   1. check(counter) before decrypting (a cheap filter: replays never cost an AEAD attempt);
 *   2. commit(counter) only AFTER the AEAD decryption succeeded, and drop the message if commit
 *      returns false. Committing unauthenticated counters would let anyone on the line slide the
 *      window forward with one forged frame and make every genuine frame "too old".
 * Must never: accept a counter twice, or accept one more than windowBits below the highest.
 *
 * Layout: the bitmap is a ring of 32-bit blocks, a power of two of them with at least one block
 * more than the window needs, so advancing only zeroes whole blocks (RFC 6479 §2). Only the
 * highest counter is a bigint.
 */
import { assert } from "../errors.ts";
import { REPLAY_WINDOW_BITS } from "../wire/limits.ts";

const U64_MAX = 2n ** 64n - 1n;

export class ReplayWindow {
  /** Highest committed counter; -1 before the first commit. */
  private highest = -1n;
  private readonly bitmap: Uint32Array;
  private readonly blockMask: number;
  private readonly blockMaskBig: bigint;
  private readonly bitMaskBig: bigint;
  private readonly blocks: bigint;
  private readonly window: bigint;

  constructor(readonly windowBits: number = REPLAY_WINDOW_BITS) {
    assert(Number.isInteger(windowBits) && windowBits >= 1 && windowBits <= 1 << 20, "bad window size");
    let blocks = 1;
    while (blocks < Math.ceil(windowBits / 32) + 1) blocks *= 2;
    this.bitmap = new Uint32Array(blocks);
    this.blockMask = blocks - 1;
    this.blockMaskBig = BigInt(blocks - 1);
    this.bitMaskBig = BigInt(blocks * 32 - 1);
    this.blocks = BigInt(blocks);
    this.window = BigInt(windowBits);
  }

  /** True if counter would be accepted now: not too old and not committed. Changes nothing. */
  check(counter: bigint): boolean {
    assertU64(counter);
    if (counter > this.highest) return true;
    if (this.highest - counter >= this.window) return false;
    const bit = Number(counter & this.bitMaskBig);
    return (this.bitmap[bit >>> 5]! & (1 << (bit & 31))) === 0;
  }

  /**
   * Marks counter as seen; call only after the message authenticated. Returns false (and
   * changes nothing) if it is too old or already committed, e.g. a duplicate that passed
   * check() while its twin was being decrypted; the caller then drops the message.
   */
  commit(counter: bigint): boolean {
    assertU64(counter);
    if (counter > this.highest) {
      if (this.highest >= 0n) this.advance(counter);
      this.highest = counter;
    } else if (this.highest - counter >= this.window) {
      return false;
    }
    const bit = Number(counter & this.bitMaskBig);
    const w = bit >>> 5;
    const m = 1 << (bit & 31);
    const word = this.bitmap[w]!;
    if (word & m) return false;
    this.bitmap[w] = word | m;
    return true;
  }

  /** Zeroes the blocks that the move from highest to counter brings into the ring. */
  private advance(counter: bigint): void {
    const cur = this.highest >> 5n;
    const diff = (counter >> 5n) - cur;
    if (diff >= this.blocks) {
      this.bitmap.fill(0);
      return;
    }
    let idx = Number(cur & this.blockMaskBig);
    for (let k = Number(diff); k > 0; k--) {
      idx = (idx + 1) & this.blockMask;
      this.bitmap[idx] = 0;
    }
  }
}

function assertU64(counter: bigint): void {
  assert(typeof counter === "bigint" && counter >= 0n && counter <= U64_MAX, "counter must be a u64");
}
