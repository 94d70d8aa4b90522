/**
 * qubes.GpgImportKey's parser against keys made by the real gpg: public keys pass (armored,
 * binary, several), with the fingerprints gpg itself reports; secret keys, secret subkeys,
 * PRIVATE KEY BLOCK armor, a secret key hidden after a public one, and compressed data are
 * refused; fuzzed and mutated data only ever gives public-key packets or our typed error.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { KeyImportError, parseKeyImport } from "./openpgp-import.ts";

let home: string;
let fpr: string;
let fpr2: string;
const bin: Record<string, Uint8Array> = {};

function gpg(args: string[], input?: Uint8Array): Uint8Array {
  const r = Bun.spawnSync(
    [
      "gpg",
      "--homedir",
      home,
      "--batch",
      "--no-tty",
      "--pinentry-mode",
      "loopback",
      "--passphrase",
      "",
      ...args,
    ],
    {
      stdin: input ?? "ignore",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" },
    },
  );
  if (r.exitCode !== 0) throw new Error(`gpg ${args.join(" ")}: ${r.stderr.toString()}`);
  return new Uint8Array(r.stdout);
}

const fprOf = (uid: string) =>
  /^fpr:+([0-9A-F]+):/m.exec(new TextDecoder().decode(gpg(["--with-colons", "--list-keys", uid])))![1]!;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "qa-import-"));
  gpg(["--quick-gen-key", "One <one@example.invalid>", "ed25519", "sign", "never"]);
  gpg(["--quick-gen-key", "Two <two@example.invalid>", "rsa2048", "sign", "never"]);
  fpr = fprOf("one@example.invalid");
  fpr2 = fprOf("two@example.invalid");
  gpg(["--quick-add-key", fpr, "cv25519", "encr", "never"]);
  gpg(["--quick-gen-key", "Three <three@example.invalid>", "nistp256", "sign", "never"]);
  gpg(["--quick-add-key", fprOf("three@example.invalid"), "nistp256", "encr", "never"]);
  gpg(["--quick-gen-key", "Four <four@example.invalid>", "dsa2048", "sign", "never"]);
  bin.ec = gpg(["--export", "three@example.invalid"]);
  bin.dsa = gpg(["--export", "four@example.invalid"]);
  bin.pub = gpg(["--export", fpr]);
  bin.pubArmor = gpg(["--export", "--armor", fpr]);
  bin.both = gpg(["--export", fpr, fpr2]);
  bin.sec = gpg(["--export-secret-keys", fpr]);
  bin.secArmor = gpg(["--export-secret-keys", "--armor", fpr]);
  bin.secSub = gpg(["--export-secret-subkeys", fpr]);
  bin.compressed = gpg(["--compress-algo", "zlib", "--store"], bin.pub);
}, 60_000);

afterAll(() => {
  Bun.spawnSync(["gpgconf", "--homedir", home, "--kill", "all"]);
  rmSync(home, { recursive: true, force: true });
});

function refused(data: Uint8Array): string {
  try {
    parseKeyImport(data);
  } catch (e) {
    expect(e).toBeInstanceOf(KeyImportError);
    return (e as KeyImportError).reason;
  }
  throw new Error("accepted");
}

const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe("qubes.GpgImportKey data", () => {
  test("public keys pass, armored or binary, with gpg's own fingerprints; gpg re-imports our re-encoding", () => {
    const a = parseKeyImport(bin.pub!);
    expect(a.keys).toEqual([{ version: 4, fingerprint: fpr }]);
    expect(parseKeyImport(bin.pubArmor!).keys).toEqual(a.keys);
    expect(parseKeyImport(bin.both!).keys.map((k) => k.fingerprint)).toEqual([fpr, fpr2]);
    const text = new TextEncoder().encode(
      `some words before\n${new TextDecoder().decode(bin.pubArmor!)}and after\n`,
    );
    expect(parseKeyImport(text).keys).toEqual(a.keys);
    // Our re-encoding is what gpg gets: it must list the same key.
    const listed = new TextDecoder().decode(
      gpg(["--with-colons", "--import-options", "show-only", "--import"], a.binary),
    );
    expect(listed).toContain(`fpr:::::::::${fpr}:`);
  });

  test("secret key material is refused wherever it is", () => {
    expect(refused(bin.sec!)).toBe("secret-key");
    expect(refused(bin.secArmor!)).toBe("secret-key");
    expect(refused(bin.secSub!)).toBe("secret-key");
    expect(refused(cat(bin.pub!, bin.sec!))).toBe("secret-key");
    expect(refused(cat(bin.pub!, bin.secSub!))).toBe("secret-key");
    const armored = new TextDecoder().decode(bin.pubArmor!) + new TextDecoder().decode(bin.secArmor!);
    expect(refused(new TextEncoder().encode(armored))).toBe("secret-key");
  });

  test("compressed data (which could wrap a secret key) and other packets are refused", () => {
    expect(refused(bin.compressed!)).toBe("packet-not-allowed");
    expect(refused(cat(bin.pub!, bin.compressed!))).toBe("packet-not-allowed");
    expect(
      refused(new TextEncoder().encode("-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n")),
    ).toBe("packet-not-allowed");
  });

  test("malformed data is refused", () => {
    expect(refused(new Uint8Array(0))).toBe("not-a-key");
    expect(refused(bin.pub!.subarray(0, bin.pub!.length - 1))).toBe("malformed");
    expect(refused(new TextEncoder().encode("hello\n"))).toBe("not-a-key");
    // A user ID first: not a transferable public key.
    expect(refused(new Uint8Array([0xcd, 1, 0x41]))).toBe("not-a-key");
    // Partial and indeterminate lengths.
    expect(refused(new Uint8Array([0xc6, 0xe1, 4, 0]))).toBe("malformed");
    expect(refused(new Uint8Array([0x9b, 4, 0]))).toBe("malformed");
    const armor = new TextDecoder().decode(bin.pubArmor!);
    const badCrc = armor.replace(/\n=(....)\n/, (_, c: string) => `\n=${c === "AAAA" ? "AAAB" : "AAAA"}\n`);
    expect(refused(new TextEncoder().encode(badCrc))).toBe("armor");
    expect(refused(new TextEncoder().encode(armor.replace("-----END PGP PUBLIC KEY BLOCK-----", "")))).toBe(
      "armor",
    );
  });

  test("fuzz: random and mutated data give public-key packets only, or our typed error", () => {
    const check = (data: Uint8Array) => {
      try {
        const r = parseKeyImport(data);
        // The re-encoding parses again to the same keys, and holds only allowed packet tags.
        expect(parseKeyImport(r.binary).keys).toEqual(r.keys);
        let at = 0;
        while (at < r.binary.length) {
          const tag = r.binary[at]! & 0x3f;
          expect([2, 6, 13, 14, 17]).toContain(tag);
          const o1 = r.binary[at + 1]!;
          const len =
            o1 < 192
              ? o1
              : o1 < 224
                ? ((o1 - 192) << 8) + r.binary[at + 2]! + 192
                : new DataView(r.binary.buffer, r.binary.byteOffset + at + 2, 4).getUint32(0);
          at += (o1 < 192 ? 2 : o1 < 224 ? 3 : 6) + len;
        }
      } catch (e) {
        expect(e).toBeInstanceOf(KeyImportError);
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), check), { numRuns: 2000 });
    const base = [bin.pub!, bin.pubArmor!, bin.both!];
    fc.assert(
      fc.property(
        fc.nat(2),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        (i, edits) => {
          const d = new Uint8Array(base[i]!);
          for (const [at, v] of edits) d[at % d.length] = v;
          check(d);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("red team I1: a key packet with bytes after its key material is refused (the prompt's fingerprint would not be gpg's)", () => {
    // gpg reads a key's fields and ignores what follows, so it imported such a key under its
    // real fingerprint while the prompt showed a hash over the padded body.
    const withTrailing = (data: Uint8Array, packetIndex: number) => {
      const packets: { tag: number; body: Uint8Array }[] = [];
      let at = 0;
      while (at < data.length) {
        const h = data[at]!;
        const tag = (h >> 2) & 0x0f;
        const n = 1 << (h & 3);
        let len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + data[at + 1 + i]!;
        packets.push({ tag, body: data.subarray(at + 1 + n, at + 1 + n + len) });
        at += 1 + n + len;
      }
      return cat(
        ...packets.map((p, i) => {
          const body = i === packetIndex ? cat(p.body, new Uint8Array(20).fill(0x41)) : p.body;
          return cat(
            Uint8Array.of(0x80 | (p.tag << 2) | 2),
            Uint8Array.of(0, 0, body.length >> 8, body.length & 255),
            body,
          );
        }),
      );
    };
    // Unpadded, the same re-framing parses (so the padding is what is refused).
    expect(parseKeyImport(withTrailing(bin.pub!, -1)).keys[0]!.fingerprint).toBe(fpr);
    expect(refused(withTrailing(bin.pub!, 0))).toBe("malformed");
    const subkeyAt = (() => {
      let at = 0;
      let i = 0;
      while (at < bin.pub!.length) {
        const h = bin.pub![at]!;
        if (((h >> 2) & 0x0f) === 14) return i;
        const n = 1 << (h & 3);
        let len = 0;
        for (let k = 0; k < n; k++) len = len * 256 + bin.pub![at + 1 + k]!;
        at += 1 + n + len;
        i++;
      }
      throw new Error("no subkey");
    })();
    expect(refused(withTrailing(bin.pub!, subkeyAt))).toBe("malformed");
  });

  test("red team I1: keys of every algorithm gpg makes here pass with gpg's own fingerprints", () => {
    const listed = (data: Uint8Array) =>
      [
        ...new TextDecoder()
          .decode(gpg(["--with-colons", "--import-options", "show-only", "--import"], data))
          .matchAll(/^pub:.*\nfpr:+([0-9A-F]+):/gm),
      ].map((m) => m[1]!);
    for (const name of ["pub", "both", "ec", "dsa"]) {
      const keys = parseKeyImport(bin[name]!).keys.map((k) => k.fingerprint);
      expect([name, keys]).toEqual([name, listed(bin[name]!)]);
    }
  });
});
