/**
 * For a split-gpg v1 signature that an approver's digest grant may cover (docs/device-policy.md
 * "Unattended signing"): the client's data (frame fd 0) read in full before the confirmation, so
 * its digest can be matched against the grant, then replayed byte for byte into the normal input
 * pump. Only when the client has a digest grant waiting, at most APPROVE_LIMITS.prereadBytes and
 * until the request's wall time; past either (or on a framing fault, which the pump then finds
 * and reports as usual) there is no digest and the press decides.
 * Must never: drop, reorder or change a client byte (the replay is the exact bytes read), or
 * hold more than prereadBytes plus one read chunk.
 */
import { createHash } from "node:crypto";
import { concatBytes } from "../../../core/bytes.ts";
import { FrameReader } from "../../../core/gpg/v1-wire.ts";
import { APPROVE_LIMITS } from "../../../core/qrexec/services.ts";
import type { ByteSource } from "../../../transport/transport.ts";

export interface Preread {
  /** Everything read from the client after the header, to be replayed first. */
  readonly raw: Uint8Array;
  /** The client closed its stream while reading (the pump must see EOF right after `raw`). */
  readonly ended: boolean;
  /** algo -> upper-case hex of the whole fd-0 data; null when it could not be had. */
  readonly digests: ReadonlyMap<string, string> | null;
}

/** Node's names for the digest algorithms a grant may name. */
const NODE_ALGO: Record<string, string> = {
  sha1: "sha1",
  rmd160: "ripemd160",
  sha224: "sha224",
  sha256: "sha256",
  sha384: "sha384",
  sha512: "sha512",
};

export async function prereadData(
  first: Uint8Array,
  src: ByteSource,
  fdCount: number,
  algos: readonly string[],
  deadlineMs: number,
): Promise<Preread> {
  const chunks: Uint8Array[] = first.length > 0 ? [first] : [];
  let size = first.length;
  const raw = () => concatBytes(chunks);
  const hashes = algos.flatMap((a) => (NODE_ALGO[a] ? [[a, createHash(NODE_ALGO[a]!)] as const] : []));
  const reader = new FrameReader(fdCount, false);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => {
    timer = setTimeout(() => r("late"), Math.max(0, deadlineMs));
  });
  try {
    let chunk: Uint8Array | null = first;
    for (;;) {
      if (chunk !== null && chunk.length > 0) {
        reader.push(chunk);
        for (let f = reader.next(); f; f = reader.next()) {
          if (f.kind === "data" && f.fd === 0) for (const [, h] of hashes) h.update(f.data);
          if (f.kind === "eof" && f.fd === 0) {
            const digests = new Map(hashes.map(([a, h]) => [a, h.digest("hex").toUpperCase()]));
            return { raw: raw(), ended: false, digests };
          }
        }
      }
      if (size > APPROVE_LIMITS.prereadBytes) return { raw: raw(), ended: false, digests: null };
      const next = await Promise.race([src.read(), late]);
      if (next === "late") return { raw: raw(), ended: false, digests: null };
      if (next === null) return { raw: raw(), ended: true, digests: null };
      chunks.push(next);
      size += next.length;
      chunk = next;
    }
  } catch {
    // A framing fault: the pump reads the same bytes and reports it as it always does.
    return { raw: raw(), ended: false, digests: null };
  } finally {
    clearTimeout(timer);
  }
}
