/**
 * Ways to cut a byte stream into the chunks a reader is fed, for tests that show a decoder gives
 * the same result however its input arrives. Views, not copies.
 */

/** Cut at the given offsets (each taken modulo length + 1, duplicates ignored). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

/** Chunks of the given sizes in turn (at least 1 byte each); one chunk when sizes is empty. */
export function chunked(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const n = sizes.length ? Math.max(1, sizes[k % sizes.length]!) : bytes.length;
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}
