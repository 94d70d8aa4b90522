/**
 * Property and fuzz tests for qfile (reference/qfile.md). Guarantees shown:
 * - QfileDecoder: arbitrary bytes give events or a QfileError (a ProtocolError), nothing else;
 *   how the input is split never changes the events, the error or the CRC; names and targets
 *   never exceed 16383 bytes.
 * - unpackQfile on arbitrary and on structured-but-hostile streams (`..`, `/`, links, a
 *   pre-existing link to outside, bad modes, bad nsec, truncation, bit flips): exactly one reply,
 *   nothing written outside the target directory (a sentinel and a full listing outside it),
 *   every link created stays inside, and no `.part` file is ever left behind.
 * Runs: FUZZ_RUNS (default 200).
 */
import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import fc from "fast-check";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { ProtocolError } from "../../core/errors.ts";
import {
  encodeFileHeader,
  MAX_NAME_BYTES,
  QfileDecoder,
  QfileError,
  type QfileEvent,
} from "../../core/qrexec/qfile.ts";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";
import { splitAt } from "../helpers/chunks.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const TIMEOUT = 120_000 + RUNS * 50; // generous: a loaded CI machine must not fail a property test on time
const enc = (s: string) => new TextEncoder().encode(s);

/** All events (data copied) and the outcome of decoding `chunks` then EOF. */
function decodeAll(chunks: Uint8Array[], maxFiles?: number) {
  const d = new QfileDecoder({ maxFiles });
  const events: QfileEvent[] = [];
  let errno: number | null = null;
  try {
    for (const c of chunks) {
      d.push(c);
      for (let ev = d.next(); ev; ev = d.next())
        events.push(ev.kind === "data" ? { ...ev, bytes: ev.bytes.slice() } : ev);
    }
    d.finish();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    expect(e).toBeInstanceOf(QfileError);
    errno = (e as QfileError).errno;
  }
  // Merge data runs so different splits compare equal.
  const merged: unknown[] = [];
  for (const ev of events) {
    const prev = merged.at(-1) as { kind: string; bytes: number[] } | undefined;
    if (ev.kind === "data" && prev?.kind === "data") prev.bytes.push(...ev.bytes);
    else merged.push(ev.kind === "data" ? { kind: "data", bytes: Array.from(ev.bytes) } : ev);
  }
  return { events: merged, errno, crc: d.crc };
}

/** Hostile entries: names and targets from pieces that stress every rule. */
const piece = fc.constantFrom(
  "a",
  "b",
  "evil",
  "..",
  ".",
  "",
  "x y",
  "β",
  "😅",
  "\x01",
  "ab\0c",
  "a".repeat(300),
);
const path = fc.array(piece, { minLength: 1, maxLength: 4 }).map((p) => p.join("/"));
const entryArb = fc.record({
  type: fc.constantFrom(0o100000, 0o100000, 0o040000, 0o040000, 0o120000, 0o010000, 0o020000),
  perm: fc.integer({ min: 0, max: 0o7777 }),
  name: fc.oneof(path, fc.constant("/etc/x")),
  target: fc.oneof(path, fc.constantFrom("/etc", "../../..", "")),
  data: fc.uint8Array({ maxLength: 40 }),
  lenDelta: fc.constantFrom(0, 0, 0, 1, -1, 2 ** 40),
  nsec: fc.constantFrom(0, 0, 999999999, 1e9, 0xffffffff),
  nul: fc.boolean(),
});
type EntrySpec = typeof entryArb extends fc.Arbitrary<infer T> ? T : never;

function encodeEntry(e: EntrySpec): Uint8Array {
  const name = enc(e.nul ? `${e.name}\0` : e.name);
  const payload = e.type === 0o120000 ? enc(e.target) : e.type === 0o100000 ? e.data : new Uint8Array(0);
  const filelen = BigInt(Math.max(0, payload.length + e.lenDelta));
  const h = encodeFileHeader({
    namelen: name.length,
    mode: e.type | e.perm | 0o700,
    filelen,
    atime: 1,
    atimeNsec: e.nsec,
    mtime: 2,
    mtimeNsec: 0,
  });
  const out = new Uint8Array(32 + name.length + payload.length);
  out.set(h);
  out.set(name, 32);
  out.set(payload, 32 + name.length);
  return out;
}

const BASE = await fs.mkdtemp(join(tmpdir(), "qfile-fuzz-"));
afterAll(() => fs.rm(BASE, { recursive: true, force: true }));
const OUTSIDE = join(BASE, "outside");
await fs.mkdir(OUTSIDE);
await fs.writeFile(join(OUTSIDE, "sentinel"), "s");

/** Every path under `d`, byte-exact (names need not be UTF-8), as latin1 strings. */
async function walk(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of await fs.readdir(Buffer.from(d, "latin1"), { encoding: "buffer" })) {
    const p = `${d}/${n.toString("latin1")}`;
    out.push(p);
    if ((await fs.lstat(Buffer.from(p, "latin1"))).isDirectory()) out.push(...(await walk(p)));
  }
  return out;
}

let run = 0;
/** One unpack into a fresh BASE/in/N with a pre-existing `evil -> outside`; checks the guarantees. */
async function unpackChecked(stream: Uint8Array, chunk: number, allowAllNames: boolean): Promise<void> {
  const dir = join(BASE, "in", String(run++));
  await fs.mkdir(dir, { recursive: true });
  await fs.symlink(OUTSIDE, join(dir, "evil"));
  let off = 0;
  const source: ByteSource = {
    read: async () => {
      if (off >= stream.length) return null;
      off += chunk;
      return stream.slice(off - chunk, off);
    },
    close() {},
    closed: Promise.resolve(),
    description: "fuzz",
  };
  const writes: Uint8Array[] = [];
  let closes = 0;
  const sink: ByteSink = {
    write: async (b) => void writes.push(b.slice()),
    closeWrite: async () => void closes++,
    close() {},
    closed: Promise.resolve(),
    description: "fuzz",
  };
  const r = await unpackQfile(source, sink, { dir, allowAllNames, sync: false });
  expect([writes.length, closes]).toEqual([1, 1]);
  const reply = writes[0]!;
  expect(reply.length === 16 || reply.length === 20 + new DataView(reply.buffer).getUint32(16, true)).toBe(
    true,
  );
  expect(new DataView(reply.buffer).getUint32(0, true)).toBe(r.code);
  if (r.code === 0) expect(decodeAll([stream])).toMatchObject({ errno: null, crc: r.crc });
  const all = await walk(BASE);
  for (const p of all) {
    const inside =
      p.startsWith(`${join(BASE, "in")}/`) ||
      p === join(BASE, "in") ||
      p === OUTSIDE ||
      p === join(OUTSIDE, "sentinel");
    expect(inside ? "ok" : p).toBe("ok");
    expect(/\.qfile-[0-9a-f]+\.part$/.test(p) ? p : "ok").toBe("ok");
  }
  expect(await fs.readFile(join(OUTSIDE, "sentinel"), "utf8")).toBe("s");
  for (const p of all.filter((q) => q.startsWith(`${dir}/`) && q !== join(dir, "evil"))) {
    const st = await fs.lstat(Buffer.from(p, "latin1"));
    if (!st.isSymbolicLink()) continue;
    const top = join(dir, p.slice(dir.length + 1).split("/")[0]!);
    const target = await fs.readlink(Buffer.from(p, "latin1"), { encoding: "buffer" });
    const to = resolve(dirname(p), target.toString("latin1"));
    expect(to === top || to.startsWith(`${top}/`) ? "inside" : `${p} -> ${to}`).toBe("inside");
  }
  await fs.rm(dir, { recursive: true, force: true });
}

describe("QfileDecoder fuzz", () => {
  test(
    "arbitrary bytes: events or QfileError; split-invariant; bounded names",
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 8 }), (b, cuts) => {
          const whole = decodeAll([b]);
          expect(decodeAll(splitAt(b, cuts))).toEqual(whole);
          for (const ev of whole.events as QfileEvent[]) {
            if (ev.kind === "entry") expect(ev.name.length).toBeLessThanOrEqual(MAX_NAME_BYTES);
          }
        }),
        { numRuns: RUNS * 5 },
      );
    },
    TIMEOUT,
  );

  test(
    "structured streams: same outcome however split, and with a files limit",
    () => {
      fc.assert(
        fc.property(
          fc.array(entryArb, { maxLength: 6 }),
          fc.boolean(),
          fc.array(fc.nat(), { maxLength: 6 }),
          fc.nat(4),
          (es, end, cuts, maxFiles) => {
            const b = Uint8Array.from([
              ...es.flatMap((e) => Array.from(encodeEntry(e))),
              ...(end ? new Array(32).fill(0) : []),
            ]);
            expect(decodeAll(splitAt(b, cuts), maxFiles)).toEqual(decodeAll([b], maxFiles));
          },
        ),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );
});

describe("unpackQfile fuzz", () => {
  test(
    "arbitrary bytes: one reply, nothing outside, no .part",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ maxLength: 300 }),
          fc.integer({ min: 1, max: 64 }),
          fc.boolean(),
          (b, chunk, all) => unpackChecked(b, chunk, all),
        ),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );

  test(
    "hostile structured streams (truncated, bit-flipped): one reply, nothing outside, links stay inside",
    async () => {
      const stream = fc.record({
        entries: fc.array(entryArb, { minLength: 1, maxLength: 8 }),
        end: fc.boolean(),
        cut: fc.option(fc.nat(), { freq: 3 }),
        flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { freq: 4 }),
      });
      await fc.assert(
        fc.asyncProperty(stream, fc.integer({ min: 1, max: 100 }), fc.boolean(), async (s, chunk, all) => {
          let b = Uint8Array.from([
            ...s.entries.flatMap((e) => Array.from(encodeEntry(e))),
            ...(s.end ? new Array(32).fill(0) : []),
          ]);
          if (s.cut !== null) b = b.subarray(0, s.cut % (b.length + 1));
          if (s.flip !== null && b.length > 0) b[s.flip[0] % b.length]! ^= s.flip[1];
          await unpackChecked(b, chunk, all);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );
});
