/**
 * qfile on real filesystems (reference/qfile.md §3, §5): a tree packed through an in-memory pipe
 * into the unpacker arrives identical (types, contents, modes, mtimes, link targets); every §5
 * case as a crafted stream gets its exact code and last name, and leaves nothing behind but the
 * earlier complete entries (no .part file, no partial file); escapes through links are refused.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packQfile, scanTree, splitArgument } from "../../calls/qfile-pack.ts";
import { type UnpackOptions, unpackQfile } from "../../calls/qfile-unpack.ts";
import { crc32, encodeFileHeader, type FileHeader } from "../../core/qrexec/qfile.ts";
import { memoryPair } from "../../transport/memory.ts";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";

const ROOT = await fs.mkdtemp(join(tmpdir(), "qfile-it-"));
afterAll(() => fs.rm(ROOT, { recursive: true, force: true }));
let n = 0;
const fresh = async () => {
  const d = join(ROOT, `t${n++}`);
  await fs.mkdir(d);
  return d;
};
const enc = (s: string) => new TextEncoder().encode(s);
const cat = (...p: Uint8Array[]) => Uint8Array.from(p.flatMap((x) => Array.from(x)));

type E = {
  name: string | Uint8Array;
  mode?: number;
  data?: string | Uint8Array;
  filelen?: bigint;
  h?: Partial<FileHeader>;
};
/** One entry: name sent with a NUL (as qfile-agent), payload `data`; filelen defaults to its length. */
function entry(e: E): Uint8Array {
  const name = cat(typeof e.name === "string" ? enc(e.name) : e.name, Uint8Array.of(0));
  const data = typeof e.data === "string" ? enc(e.data) : (e.data ?? new Uint8Array(0));
  const h = { namelen: name.length, mode: e.mode ?? 0o100644, filelen: e.filelen ?? BigInt(data.length) };
  const t = { atime: 1700000000, atimeNsec: 0, mtime: 1700000000, mtimeNsec: 0, ...h, ...e.h };
  return cat(encodeFileHeader(t), name, data);
}
const dir = (name: string, mode = 0o40755, h?: Partial<FileHeader>) => entry({ name, mode, h });
const file = (name: string | Uint8Array, data = "", mode = 0o100644) => entry({ name, data, mode });
const link = (name: string, target: string) => entry({ name, mode: 0o120777, data: target });
const END = new Uint8Array(32);

/** Feeds `stream` (in 7-byte chunks, to cross every boundary) to unpackQfile; parses the reply. */
async function unpack(stream: Uint8Array, dest: string, opts: Partial<UnpackOptions> = {}) {
  let off = 0;
  const source: ByteSource = {
    read: async () => {
      if (off >= stream.length) return null;
      off += 7;
      return stream.slice(off - 7, off);
    },
    close() {},
    closed: Promise.resolve(),
    description: "test",
  };
  const replies: Uint8Array[] = [];
  let closes = 0;
  const sink: ByteSink = {
    write: async (b) => void replies.push(b.slice()),
    closeWrite: async () => void closes++,
    close() {},
    closed: Promise.resolve(),
    description: "test",
  };
  const result = await unpackQfile(source, sink, { dir: dest, sync: false, ...opts });
  expect([replies.length, closes]).toEqual([1, 1]);
  const r = replies[0]!;
  const v = new DataView(r.buffer);
  expect(v.getUint32(0, true)).toBe(result.code);
  expect(v.getBigUint64(8, true)).toBe(BigInt(result.crc));
  const last = r.length === 16 ? null : new TextDecoder().decode(r.subarray(20));
  if (r.length > 16) expect(v.getUint32(16, true)).toBe(r.length - 20);
  return { ...result, reply: r, last };
}

/** Everything under `d`, as "path type" lines (links with their target), sorted. */
async function listing(d: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const name of await fs.readdir(join(d, rel))) {
    const p = rel ? `${rel}/${name}` : name;
    const st = await fs.lstat(join(d, p));
    if (st.isSymbolicLink()) out.push(`${p} -> ${await fs.readlink(join(d, p))}`);
    else if (st.isDirectory()) out.push(`${p}/`, ...(await listing(d, p)));
    else out.push(`${p} ${st.size}`);
  }
  return out.sort();
}

describe("pack -> unpack round trip", () => {
  test("a tree with nested dirs, empty and 5 MB files, links, Unicode names, modes and mtimes", async () => {
    const src = await fresh();
    const dst = join(await fresh(), "QubesIncoming", "work");
    const t = join(src, "top");
    await fs.mkdir(join(t, "sub", "deeper"), { recursive: true });
    await fs.writeFile(join(t, "empty"), "");
    const big = new Uint8Array(5 * 1024 * 1024 + 13).map((_, i) => (i * 2654435761) >>> 24);
    await fs.writeFile(join(t, "big.bin"), big);
    await fs.writeFile(join(t, "sub", "deeper", "file.txt"), "deep\n");
    await fs.writeFile(join(t, "β-ünï 中文 “q”.txt"), "unicode");
    await fs.symlink("sub/deeper/file.txt", join(t, "ln"));
    await fs.symlink("../empty", join(t, "sub", "up"));
    await fs.symlink("nowhere/", join(t, "sub", "dangling"));
    await fs.writeFile(join(src, "single.txt"), "one");
    expect(Bun.spawnSync(["mkfifo", join(t, "fifo")]).exitCode).toBe(0); // skipped, never opened
    const modes: [string, number][] = [
      ["top/empty", 0o600],
      ["top/big.bin", 0o640],
      ["top/sub/deeper/file.txt", 0o444],
      ["single.txt", 0o755],
      ["top/sub/deeper", 0o700],
      ["top/sub", 0o555],
      ["top", 0o750],
    ];
    for (const [p, m] of modes) await fs.chmod(join(src, p), m);
    let k = 0;
    for (const p of [
      "top/empty",
      "top/big.bin",
      "top/sub/deeper/file.txt",
      "single.txt",
      "top/sub/deeper",
      "top/sub",
      "top",
    ]) {
      await fs.utimes(join(src, p), 1600000000 + k, 1500000000.25 + 1000 * k++);
    }
    expect(await scanTree([t, join(src, "single.txt")])).toEqual({
      totalBytes: big.length + 5 + 7 + 3 + 19 + 8 + 8,
      namesSafe: true,
    });

    const [a, b] = memoryPair({ bufferBytes: 256 * 1024 });
    const progress: number[] = [];
    const [sent, got] = await Promise.all([
      packQfile([`${t}/`, join(src, "single.txt")], a, a, { onProgress: (s) => progress.push(s) }),
      unpackQfile(b, b, { dir: dst }),
    ]);
    expect(sent).toEqual({ code: 0, lastName: "single.txt" });
    expect(got.code).toBe(0);
    expect(new TextDecoder().decode(got.lastName!)).toBe("single.txt");
    expect(progress.at(-1)).toBe(big.length + 5 + 7 + 3 + 19 + 8 + 8);
    const want = (await listing(src)).filter((l) => l !== "top/fifo 0");
    expect(await listing(dst)).toEqual(want);
    for (const p of want.map((l) => l.replace(/ -> .*$| \d+$|\/$/, ""))) {
      const [s, d] = [
        await fs.lstat(join(src, p), { bigint: true }),
        await fs.lstat(join(dst, p), { bigint: true }),
      ];
      if (s.isSymbolicLink()) continue;
      expect([p, Number(d.mode)]).toEqual([p, Number(s.mode)]);
      expect(Math.abs(Number(d.mtimeNs - s.mtimeNs))).toBeLessThan(1000);
      if (s.isFile()) {
        const h = async (f: string) =>
          createHash("sha256")
            .update(await fs.readFile(f))
            .digest("hex");
        expect(await h(join(dst, p))).toBe(await h(join(src, p)));
      }
    }
    expect((await fs.stat(join(dst, ".."))).mode & 0o777).toBe(0o700);
  });

  test("a refusal mid-stream reaches the sender without hanging it", async () => {
    const src = await fresh();
    const dst = await fresh();
    await fs.mkdir(join(src, "d"));
    await fs.writeFile(join(src, "d", "a"), "first");
    await fs.writeFile(join(src, "d", "big"), new Uint8Array(8 * 1024 * 1024));
    await fs.mkdir(join(dst, "d"));
    await fs.writeFile(join(dst, "d", "big"), "already here");
    const [a, b] = memoryPair();
    const [sent, got] = await Promise.all([
      packQfile([join(src, "d")], a, a),
      unpackQfile(b, b, { dir: dst }),
    ]);
    expect([sent, got.code]).toEqual([{ code: 17, lastName: "d/big" }, 17]);
    a.close();
    b.close();
    expect((await listing(dst)).filter((l) => l !== "d/a 5")).toEqual(["d/", "d/big 12"]);
  });

  test("a file that shrinks while being sent aborts the sender; the receiver keeps nothing of it", async () => {
    const src = await fresh();
    const dst = await fresh();
    const f = join(src, "shrinks");
    await fs.writeFile(f, new Uint8Array(1024 * 1024));
    const [a, b] = memoryPair();
    let first = true;
    const write = a.write.bind(a);
    a.write = async (data) => {
      if (first) await fs.truncate(f, 1000);
      first = false;
      return write(data);
    };
    const [sent, got] = await Promise.allSettled([packQfile([f], a, a), unpackQfile(b, b, { dir: dst })]);
    expect(sent.status === "rejected" && String(sent.reason)).toMatch(/shrank/);
    expect(got.status === "fulfilled" && got.value.code).toBe(31415926);
    expect(await listing(dst)).toEqual([]);
  });

  test("the sender checks the reply: code first, then the CRC; no reply is an error", async () => {
    const src = await fresh();
    await fs.writeFile(join(src, "f"), "data");
    const fake = async (reply: Uint8Array | null) => {
      const [a, b] = memoryPair();
      const receiver = (async () => {
        while ((await b.read()) !== null);
        if (reply) await b.write(reply);
        await b.closeWrite();
      })();
      const r = packQfile([join(src, "f")], a, a);
      await receiver;
      return r;
    };
    const reply = (code: number, crc: number, ext: boolean) => {
      const r = new Uint8Array(ext ? 21 : 16);
      new DataView(r.buffer).setUint32(0, code, true);
      new DataView(r.buffer).setUint32(8, crc, true);
      if (ext) r.set([1, 0, 0, 0, 0x22], 16);
      return r;
    };
    expect(await fake(reply(17, 0, true))).toEqual({ code: 17, lastName: "_" });
    await expect(fake(reply(0, 1234, false))).rejects.toThrow(/checksum/);
    await expect(fake(null)).rejects.toThrow(/no qfile reply/);
  });

  test("arguments refused like qubes-fs-tree-check, before anything is sent", async () => {
    for (const bad of ["", ".", "..", "/", "//", "a/..", "a/.", "./"])
      expect(() => splitArgument(bad)).toThrow();
    expect(splitArgument("a/b//")).toEqual({ dir: "a", base: "b" });
    expect(splitArgument("/x")).toEqual({ dir: "/", base: "x" });
    const [a] = memoryPair();
    await expect(packQfile(["ok", ".."], a, a)).rejects.toThrow();
  });

  test("an unsafe link or unsafe name is found by scanTree", async () => {
    const src = await fresh();
    await fs.mkdir(join(src, "d"));
    await fs.symlink("../../etc", join(src, "d", "esc"));
    await expect(scanTree([join(src, "d")])).rejects.toThrow(/unsafe symbolic link/);
    await fs.writeFile(join(src, "e\u200dx"), "");
    expect((await scanTree([join(src, "e\u200dx")])).namesSafe).toBe(false);
  });
});

describe("crafted streams that must succeed (§5)", () => {
  test("end marker only: 20-byte reply; the §1 example: reply byte for byte", async () => {
    const d = await fresh();
    expect((await unpack(END, d)).reply.length).toBe(20);
    const ex = cat(entry({ name: "x", data: "hi\n" }), END);
    const r = await unpack(ex, d);
    expect(Array.from(r.reply)).toEqual([
      0, 0, 0, 0, 0, 0, 0, 0, 0xce, 0x7d, 0x4c, 0x3a, 0, 0, 0, 0, 1, 0, 0, 0, 0x78,
    ]);
    expect(await fs.readFile(join(d, "x"), "utf8")).toBe("hi\n");
  });

  test("directories get their final mode and mtime from the second header", async () => {
    const d = await fresh();
    const late = { mtime: 1234567890, mtimeNsec: 5000 };
    const s = cat(
      dir("a"),
      file("a/b", "B", 0o100600),
      dir("a/c"),
      link("a/c/ln", "../b"),
      dir("a/c", 0o40555, late),
      dir("a", 0o40700, late),
      END,
    );
    const r = await unpack(s, d);
    expect([r.code, r.crc, r.last]).toEqual([0, crc32(s), "a"]);
    expect(await listing(d)).toEqual(["a/", "a/b 1", "a/c/", "a/c/ln -> ../b"]);
    for (const [p, m] of [
      ["a", 0o700],
      ["a/c", 0o555],
      ["a/b", 0o600],
    ] as const) {
      expect((await fs.stat(join(d, p))).mode & 0o7777).toBe(m);
    }
    // libuv takes times as double seconds: ~0.1 µs resolution at this magnitude.
    const mtime = (await fs.stat(join(d, "a/c"), { bigint: true })).mtimeNs;
    expect(Math.abs(Number(mtime - 1234567890000005000n))).toBeLessThan(1000);
  });

  test("names, links, odd headers and allow-all-names", async () => {
    const d = await fresh();
    const names = [".a", "..a", "...", " ", "β.txt", "“", "中文", "empty"];
    const noNul = cat(
      encodeFileHeader({
        namelen: 5,
        mode: 0o100644,
        filelen: 1n,
        atime: 1,
        atimeNsec: 0,
        mtime: 1,
        mtimeNsec: 0,
      }),
      enc("nonulZ"),
    );
    const maxT = { atime: 0xffffffff, atimeNsec: 999999999, mtime: 0xffffffff, mtimeNsec: 999999999 };
    const s = cat(
      ...names.map((x) => file(x)),
      noNul,
      dir("a"),
      dir("a/b"),
      link("a/b/c", ".."),
      link("a/b/d", "c/"),
      link("a/ln", "./x"),
      entry({ name: "dl", mode: 0o40755, filelen: 3n }),
      entry({ name: "late", data: "t", h: maxT }),
      END,
    );
    const r = await unpack(s, d);
    expect([r.code, r.crc]).toEqual([0, crc32(s)]);
    expect(await listing(d)).toContain("nonul 1");
    expect(await listing(d)).toContain("a/b/c -> ..");
    expect((await fs.stat(join(d, "late"), { bigint: true })).mtimeNs).toBeGreaterThanOrEqual(
      4294967295999990000n,
    );
    const all = cat(file("test-😅"), file("a\nb"), file(Uint8Array.of(0x61, 0xff)), END);
    expect((await unpack(all, await fresh(), { allowAllNames: true })).code).toBe(0);
  });
});

/** [what, stream, code, last name (null: no ext), listing afterwards, options]. */
const OK = file("ok", "kept");
type Refusal = readonly [
  string,
  Uint8Array,
  number,
  string | null,
  readonly string[],
  Partial<UnpackOptions>?,
];
const refusals: Refusal[] = [
  ...["../x", "/x", "./x", "a//x", ".", "", "a/", "a\x01", "a\x7f", "a\u00a0b", "test-😅"].map(
    (x): Refusal => [`name ${JSON.stringify(x)}`, cat(OK, file(x, "zz"), END), 84, x, ["ok 4"]],
  ),
  ["name a\\xff", cat(OK, file(Uint8Array.of(0x61, 0xff)), END), 84, "a\ufffd", ["ok 4"]],
  ["directory ..", cat(OK, dir(".."), END), 84, "..", ["ok 4"]],
  ["top-level link", cat(OK, link("ln", "x"), END), 67, "x", ["ok 4"]],
  ["link a/ln -> ../x", cat(OK, dir("a"), link("a/ln", "../x"), END), 67, "../x", ["a/", "ok 4"]],
  [
    "link a/b/ln -> ../../x",
    cat(dir("a"), dir("a/b"), link("a/b/ln", "../../x"), END),
    67,
    "../../x",
    ["a/", "a/b/"],
  ],
  ["link a/ln -> /etc/passwd", cat(dir("a"), link("a/ln", "/etc/passwd"), END), 67, "/etc/passwd", ["a/"]],
  [
    "link escape a/ln -> ../../..",
    cat(dir("a"), link("a/ln", "../../.."), file("a/ln/x"), END),
    67,
    "../../..",
    ["a/"],
  ],
  ["a/x without a", cat(OK, file("a/x", "zz"), END), 2, "a", ["ok 4"]],
  ["x twice", cat(OK, file("ok", "second"), END), 17, "ok", ["ok 4"]],
  ["file x then dir x", cat(OK, dir("ok"), END), 20, "ok", ["ok 4"]],
  [
    "a/b/ln/x through a link",
    cat(dir("a"), dir("a/b"), link("a/b/ln", ".."), file("a/b/ln/x", "zz"), END),
    20,
    "ln",
    ["a/", "a/b/", "a/b/ln -> .."],
  ],
  ["mode 010644", cat(OK, entry({ name: "p", mode: 0o10644 }), END), 22, "p", ["ok 4"]],
  [
    "namelen 16384",
    cat(
      OK,
      encodeFileHeader({
        namelen: 16384,
        mode: 0o100644,
        filelen: 0n,
        atime: 0,
        atimeNsec: 0,
        mtime: 0,
        mtimeNsec: 0,
      }),
      END,
    ),
    36,
    null,
    ["ok 4"],
  ],
  [
    "link filelen 16384",
    cat(dir("a"), entry({ name: "a/l", mode: 0o120777, data: "x".repeat(16384) }), END),
    36,
    "a/l",
    ["a/"],
  ],
  ["filelen 2^63", cat(OK, entry({ name: "huge", filelen: 1n << 63n }), END), 122, "huge", ["ok 4"]],
  ["maxBytes", cat(OK, file("b", "12345"), END), 122, "b", ["ok 4"], { maxBytes: 8 }],
  ["maxFiles", cat(OK, file("b"), END), 122, "ok", ["ok 4"], { maxFiles: 1 }],
  [
    "truncated data",
    cat(OK, entry({ name: "part", data: "abc", filelen: 100000n })),
    31415926,
    "part",
    ["ok 4"],
  ],
  [
    "EOF inside a name",
    cat(
      OK,
      encodeFileHeader({
        namelen: 9,
        mode: 0o100644,
        filelen: 0n,
        atime: 0,
        atimeNsec: 0,
        mtime: 0,
        mtimeNsec: 0,
      }),
      enc("abc"),
    ),
    31415926,
    null,
    ["ok 4"],
  ],
  ["no end marker", OK, 121, "ok", ["ok 4"]],
  ["empty input", new Uint8Array(0), 121, "", []],
  ["nsec 10^9", cat(OK, entry({ name: "t", data: "x", h: { mtimeNsec: 1e9 } }), END), 22, "t", ["ok 4"]],
  ["dir nsec 10^9", cat(dir("a"), dir("a", 0o40700, { atimeNsec: 0xffffffff }), END), 22, "a", ["a/"]],
  ["long component", cat(OK, file("n".repeat(300)), END), 36, "n".repeat(300), ["ok 4"]],
];

describe("crafted streams that must be refused (§5)", () => {
  for (const [what, stream, code, last, left, opts] of refusals) {
    test(`${what} -> ${code}`, async () => {
      const d = await fresh();
      const r = await unpack(stream, d, opts);
      expect([r.code, r.last]).toEqual([code, last]);
      expect(await listing(d)).toEqual([...left]);
      if (left.includes("ok 4")) expect(await fs.readFile(join(d, "ok"), "utf8")).toBe("kept");
    });
  }
});

describe("escapes through pre-existing links in the target directory", () => {
  test("writes, mkdir, chmod and links through a link pointing outside are refused", async () => {
    const d = await fresh();
    const outside = await fresh();
    await fs.writeFile(join(outside, "sentinel"), "s");
    await fs.chmod(outside, 0o711);
    await fs.symlink(outside, join(d, "evil"));
    await fs.mkdir(join(d, "a"));
    await fs.symlink(outside, join(d, "a", "esc"));
    const cases: [Uint8Array, number][] = [
      [file("evil/x", "pwn"), 20],
      [file("evil/sentinel", "pwn"), 20],
      [file("evil", "pwn"), 17],
      [dir("evil", 0o40777), 20],
      [dir("a/esc", 0o40777), 20],
      [file("a/esc/x"), 20],
      [link("a/esc/l", "x"), 20],
      [link("a/esc", "x"), 17],
    ];
    for (const [s, code] of cases) expect((await unpack(cat(s, END), d)).code).toBe(code);
    expect(await fs.readdir(outside)).toEqual(["sentinel"]);
    expect(await fs.readFile(join(outside, "sentinel"), "utf8")).toBe("s");
    expect((await fs.stat(outside)).mode & 0o777).toBe(0o711);
    expect(await listing(d)).toEqual(["a/", `a/esc -> ${outside}`, `evil -> ${outside}`]);
  });
});
