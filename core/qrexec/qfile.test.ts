/**
 * qfile codec (reference/qfile.md §1, §2, §5): the §1 example byte for byte, CRC-32 check values,
 * the decoder's events, caps and EOF codes, and the name / symlink validation tables of §5 plus
 * upstream's validator-test.c cases.
 */
import { describe, expect, test } from "bun:test";
import {
  crc32,
  decodeFileHeader,
  decodeResultHeader,
  EDQUOT,
  EILSEQ,
  EINVAL,
  ENAMETOOLONG,
  ENOLINK,
  EREMOTEIO,
  encodeFileHeader,
  encodeResult,
  type FileHeader,
  LEGAL_EOF,
  QfileDecoder,
  QfileError,
  type QfileEvent,
  qfileErrorMessage,
} from "./qfile.ts";
import {
  isCodePointSafeForDisplay,
  isSafeForDisplay,
  NameFlags,
  sanitizeNameForDisplay,
  unpackerNameFlags,
  validateFileName,
  validateSymlink,
} from "./qfile-names.ts";

const hex = (s: string) =>
  Uint8Array.from((s.replace(/\s+/g, "").match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const enc = (s: string) => new TextEncoder().encode(s);
const bytes = (...parts: (string | number[] | Uint8Array)[]) => {
  const bs = parts.map((p) => (typeof p === "string" ? enc(p) : Uint8Array.from(p)));
  const out = new Uint8Array(bs.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of bs) {
    out.set(b, o);
    o += b.length;
  }
  return out;
};

const EXAMPLE = hex(
  `02000000 a4810000 0300000000000000 00f15365 00000000 00f15365 00000000 7800 68690a ${"00".repeat(32)}`,
);
const EXAMPLE_REPLY = hex("00000000 00000000 ce7d4c3a00000000 01000000 78");

function hdr(h: Partial<FileHeader>): FileHeader {
  return { namelen: 0, mode: 0o100644, filelen: 0n, atime: 0, atimeNsec: 0, mtime: 0, mtimeNsec: 0, ...h };
}

/** Runs the decoder over `chunks`; returns the events and the error (if any). */
function decode(chunks: Uint8Array[], maxFiles?: number) {
  const d = new QfileDecoder({ maxFiles });
  const events: QfileEvent[] = [];
  try {
    for (const c of chunks) {
      d.push(c);
      for (let ev = d.next(); ev; ev = d.next())
        events.push(ev.kind === "data" ? { ...ev, bytes: ev.bytes.slice() } : ev);
    }
    d.finish();
    return { events, error: null, crc: d.crc };
  } catch (e) {
    if (!(e instanceof QfileError)) throw e;
    return { events, error: e, crc: d.crc };
  }
}

describe("wire codecs", () => {
  test("§1 example header, stream CRC and reply, byte for byte", () => {
    const h = hdr({ namelen: 2, filelen: 3n, atime: 1700000000, mtime: 1700000000 });
    expect(toHex(encodeFileHeader(h))).toBe(toHex(EXAMPLE.subarray(0, 32)));
    expect(decodeFileHeader(EXAMPLE)).toEqual(h);
    expect(EXAMPLE.length).toBe(69);
    expect(crc32(EXAMPLE)).toBe(0x3a4c7dce);
    expect(toHex(encodeResult(0, 0x3a4c7dce, enc("x")))).toBe(toHex(EXAMPLE_REPLY));
    expect(decodeResultHeader(EXAMPLE_REPLY)).toEqual({ code: 0, crc: 0x3a4c7dcen });
  });

  test("filelen is a full u64; reply without ext is 16 bytes; end-marker-only reply is 20", () => {
    const h = hdr({ namelen: 1, filelen: 0xffff_ffff_ffff_ffffn, atime: 0xffffffff, mtimeNsec: 999999999 });
    expect(decodeFileHeader(encodeFileHeader(h))).toEqual(h);
    expect(encodeResult(36, 0, null).length).toBe(16);
    const marker = encodeResult(0, crc32(new Uint8Array(32)), new Uint8Array(0));
    expect(marker.length).toBe(20);
    expect(decodeResultHeader(marker).crc).toBe(BigInt(crc32(new Uint8Array(32))));
    expect(toHex(marker.subarray(16))).toBe("00000000");
  });

  test("CRC-32 check values and incremental use", () => {
    expect(crc32(enc("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(enc("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(crc32(data.subarray(cut), crc32(data.subarray(0, cut)))).toBe(crc32(data));
    }
  });

  test("error wording never includes raw peer bytes", () => {
    expect(qfileErrorMessage(17, Uint8Array.of(0x61, 0x22, 0x0a, 0xff))).toBe(
      'File copy: file already exists; last file: "a___"',
    );
    expect(new QfileError(84, enc("secret")).message).not.toContain("secret");
  });

  test("a full disk and other local failures are said in words, never as a bare number", () => {
    expect(qfileErrorMessage(28)).toBe("File copy: no space left on the receiving device");
    expect(qfileErrorMessage(13)).toBe("File copy: permission denied");
    expect(qfileErrorMessage(30)).toBe("File copy: the receiving file system is read-only");
    expect(qfileErrorMessage(999)).toBe("File copy: the receiver failed (errno 999)");
  });
});

describe("QfileDecoder", () => {
  test("§1 example: whole, and one byte at a time", () => {
    for (const chunks of [[EXAMPLE], Array.from(EXAMPLE, (b) => Uint8Array.of(b))]) {
      const { events, error, crc } = decode(chunks);
      expect(error).toBeNull();
      expect(crc).toBe(0x3a4c7dce);
      const data = events
        .filter((e) => e.kind === "data")
        .map((e) => (e.kind === "data" ? toHex(e.bytes) : ""));
      expect(data.join("")).toBe("68690a");
      expect(events[0]).toMatchObject({ kind: "entry", type: "file", name: enc("x") });
      expect(events.slice(-2)).toEqual([{ kind: "end", target: null }, { kind: "done" }]);
    }
  });

  test("name without NUL, bytes after the NUL ignored, dir filelen ignored, link target", () => {
    const s = bytes(
      encodeFileHeader(hdr({ namelen: 1, mode: 0o40755, filelen: 3n })),
      "a",
      encodeFileHeader(hdr({ namelen: 5, mode: 0o120777, filelen: 3n })),
      "a/l\0z",
      "../",
      new Uint8Array(32),
      "trailing garbage",
    );
    const { events, error, crc } = decode([s]);
    expect(error).toBeNull();
    expect(crc).toBe(crc32(s.subarray(0, s.length - 16)));
    expect(events).toEqual([
      { kind: "entry", type: "dir", header: expect.anything(), name: enc("a") },
      { kind: "end", target: null },
      { kind: "entry", type: "link", header: expect.anything(), name: enc("a/l") },
      { kind: "end", target: enc("../") },
      { kind: "done" },
    ]);
  });

  const cases: [string, Uint8Array, number, string | null][] = [
    ["empty input", new Uint8Array(0), EREMOTEIO, ""],
    ["partial header", new Uint8Array(31), EREMOTEIO, ""],
    ["namelen 16384", encodeFileHeader(hdr({ namelen: 16384 })), ENAMETOOLONG, null],
    ["EOF in name", bytes(encodeFileHeader(hdr({ namelen: 3 })), "ab"), LEGAL_EOF, null],
    ["EOF in data", bytes(encodeFileHeader(hdr({ namelen: 2, filelen: 9n })), "f\0abc"), LEGAL_EOF, "f"],
    ["mode 010644", bytes(encodeFileHeader(hdr({ namelen: 2, mode: 0o10644 })), "p\0"), EINVAL, "p"],
    [
      "link target 16384",
      bytes(encodeFileHeader(hdr({ namelen: 3, mode: 0o120777, filelen: 16384n })), "a/l"),
      ENAMETOOLONG,
      "a/l",
    ],
    [
      "EOF in target",
      bytes(encodeFileHeader(hdr({ namelen: 3, mode: 0o120777, filelen: 4n })), "a/lxy"),
      LEGAL_EOF,
      "a/l",
    ],
  ];
  for (const [what, input, errno, last] of cases) {
    test(`${what} -> ${errno}`, () => {
      const { error } = decode([input]);
      expect(error?.errno).toBe(errno);
      expect(error?.lastName === null ? null : new TextDecoder().decode(error?.lastName)).toBe(last);
    });
  }

  test("CRC after an error covers complete headers/names and received data only", () => {
    const s = bytes(encodeFileHeader(hdr({ namelen: 2, filelen: 9n })), "f\0abc");
    expect(decode([s]).crc).toBe(crc32(s));
    const partial = bytes(encodeFileHeader(hdr({ namelen: 3 })), "ab");
    expect(decode([partial]).crc).toBe(crc32(partial.subarray(0, 32)));
    expect(decode([new Uint8Array(31)]).crc).toBe(0);
  });

  test("maxFiles: EDQUOT naming the previous entry, before the name is read", () => {
    const f = (n: string) => bytes(encodeFileHeader(hdr({ namelen: n.length })), n);
    const { error, crc } = decode([bytes(f("a"), f("b"), new Uint8Array(32))], 1);
    expect(error?.errno).toBe(EDQUOT);
    expect(error?.lastName).toEqual(enc("a"));
    expect(crc).toBe(crc32(bytes(f("a"), encodeFileHeader(hdr({ namelen: 1 })))));
  });
});

const F = unpackerNameFlags(false);
const ALL = unpackerNameFlags(true);
const b = (s: string | number[]) => (typeof s === "string" ? enc(s) : Uint8Array.from(s));

describe("file names (§5)", () => {
  const ok: (string | number[])[] = [
    ".a",
    "..a",
    "...",
    " ",
    "β.txt",
    "α.txt",
    "Ѐ.txt",
    "“",
    "中文",
    "한국어",
    'a/b c/\\":',
    "simple_safe_filename.txt",
  ];
  for (const n of ok) test(`allowed: ${JSON.stringify(n)}`, () => expect(validateFileName(b(n), F)).toBe(0));
  const allOnly: (string | number[])[] = ["test-😅", "a\nb", [0x61, 0xff], "a\u00a0b", [0x61, 0x7f]];
  for (const n of allOnly) {
    test(`allow-all-names only: ${JSON.stringify(n)}`, () => {
      expect(validateFileName(b(n), ALL)).toBe(0);
      expect(validateFileName(b(n), F)).toBe(EILSEQ);
    });
  }
  const refused: (string | number[])[] = [
    "../x",
    "/x",
    "./x",
    "a//x",
    ".",
    "",
    "a/",
    "a\x01",
    "a\x7f",
    [0x61, 0xff],
    "a\u00a0b",
    "test-😅",
    "..",
    "a/..",
    "a/../b",
    "/",
    "//",
    "a/.",
    "a/./a",
    "../..",
    [0xc0, 0xaf],
    [0xed, 0xa0, 0x80],
    [0xe0, 0x80, 0xaf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xce],
  ];
  for (const n of refused)
    test(`refused: ${JSON.stringify(n)}`, () => expect(validateFileName(b(n), F)).toBe(EILSEQ));
  for (const n of ["../x", "/x", "./x", "a//x", ".", "", "a/", ".."]) {
    test(`refused even with allow-all-names: ${JSON.stringify(n)}`, () =>
      expect(validateFileName(b(n), ALL)).toBe(EILSEQ));
  }

  test("every single byte, as validator-test.c", () => {
    for (let i = 0; i < 256; i++) {
      const always = i === 0x2f || i === 0x2e || i === 0;
      const name = i === 0 ? new Uint8Array(0) : Uint8Array.of(i);
      expect(validateFileName(name, NameFlags.ALLOW_UNSAFE_CHARACTERS)).toBe(always ? EILSEQ : 0);
      expect(validateFileName(name, 0)).toBe(always || i < 0x20 || i > 0x7e ? EILSEQ : 0);
    }
  });

  test("Unicode allowlist: allowed and forbidden code points", () => {
    for (const cp of [
      0x3b2, 0x400, 0x201c, 0x3400, 0x4dbf, 0x4e00, 0x9ffc, 0x20000, 0x3134a, 0x323af, 0xac00,
    ]) {
      expect(isCodePointSafeForDisplay(cp)).toBe(true);
      expect(isSafeForDisplay(enc(String.fromCodePoint(cp)))).toBe(true);
    }
    const forbidden = [
      0, 0x1f, 0x7f, 0x9f, 0xa0, 0x1680, 0x180e, 0x2000, 0x200a, 0x200d, 0x202a, 0x202e, 0x205f,
    ];
    forbidden.push(
      0xe000,
      0xf8ff,
      0xfdd0,
      0xfffe,
      0xffff,
      0x1fffe,
      0x323b0,
      0x10ffff,
      0x1f642,
      0x12000,
      0xfe0f,
      0x26a0,
      0x1f3f3,
      0x5d0,
    );
    for (const cp of forbidden) expect([cp, isCodePointSafeForDisplay(cp)]).toEqual([cp, false]);
    for (let cp = 0xd800; cp <= 0xdfff; cp += 0x7f) {
      expect(isSafeForDisplay(Uint8Array.of(0xed, 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)))).toBe(
        false,
      );
    }
    const mismatches: number[] = [];
    for (let cp = 0; cp < 0x110000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const want = cp >= 0x20 && cp !== 0x7f && isCodePointSafeForDisplay(cp);
      if (isSafeForDisplay(enc(String.fromCodePoint(cp))) !== want) mismatches.push(cp);
    }
    expect(mismatches).toEqual([]);
  });

  test("display sanitising as qfile-agent", () => {
    expect(sanitizeNameForDisplay(enc('ok "β"\n'))).toBe("ok _____");
  });
});

describe("symbolic links (§5)", () => {
  const V = (n: string, t: string, flags = F) => validateSymlink(enc(n), enc(t), flags);
  const good: [string, string][] = [
    ["a/b/c", ".."],
    ["a/b/c", "c/"],
    ["a/ln", "./x"],
    ["a/b", "c"],
    ["a/b/c", "../d"],
    ["a/b", "a"],
    ["a/b/c", "a/"],
    ["a/b", "b//c"],
    ["a/b", "././"],
    ["b/c", "."],
    ["b/c", ""],
  ];
  for (const [n, t] of good) test(`allowed: ${n} -> ${t}`, () => expect(V(n, t)).toBe(0));
  const bad: [string, string, number][] = [
    ["ln", "x", ENOLINK],
    ["a/ln", "../x", ENOLINK],
    ["a/b/ln", "../../x", ENOLINK],
    ["a/ln", "/etc/passwd", ENOLINK],
    ["a/b", "../c", ENOLINK],
    ["a/b/c", "../../d", ENOLINK],
    ["x", "anything", ENOLINK],
    ["a/b", "..", ENOLINK],
    ["a/b", "../a/b/c", ENOLINK],
    ["a/b/c", "/a", ENOLINK],
    ["a/b/c", "d/../../x", ENOLINK],
    ["b", ".", ENOLINK],
    ["..", "a/", EILSEQ],
    ["a//b", "b", EILSEQ],
    ["a/./b", "b", EILSEQ],
    ["a/b/c/", "a/", EILSEQ],
    ["a/b", "x\x01", EILSEQ],
  ];
  for (const [n, t, errno] of bad) test(`refused ${errno}: ${n} -> ${t}`, () => expect(V(n, t)).toBe(errno));

  test("without the non-canonical flag, `.`, `//` and empty targets are EILSEQ/ENOLINK", () => {
    expect(V("a/b", "b//c", 0)).toBe(EILSEQ);
    expect(V("a/b", "./c", 0)).toBe(EILSEQ);
    expect(V("b/c", "", 0)).toBe(ENOLINK);
    expect(V("a/b/c", "a/", NameFlags.ALLOW_TRAILING_SLASH)).toBe(0);
    expect(V("a/b/c/", "a/", NameFlags.ALLOW_TRAILING_SLASH)).toBe(0);
    expect(V("a", "/home/user/.bashrc", NameFlags.ALLOW_UNSAFE_SYMLINKS)).toBe(0);
    expect(V("..", "a/", NameFlags.ALLOW_UNSAFE_SYMLINKS)).toBe(EILSEQ);
    expect(V("a//b", "b//c", NameFlags.ALLOW_NON_CANONICAL_PATHS)).toBe(0);
    expect(V("a/b", "c", 64)).toBe(EINVAL);
  });
});
