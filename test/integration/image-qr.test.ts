/**
 * Our QR encoder (images/qr.ts) against `qrencode`, module by module: every level, versions 1-10
 * (7+ carry version information), with the mask qrencode chose read from its format bits. The
 * automatic mask choice is checked for being a valid mask and for rendering (two rows per line).
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { type EcLevel, encodeQr, penalty, renderQr } from "../../images/qr.ts";
import { has } from "../fixtures/images/helpers.ts";
import { lacking } from "../helpers/requires.ts";

/** qrencode's matrix for `text` (8-bit mode, no margin). */
function reference(text: string, ec: EcLevel): boolean[][] {
  const r = spawnSync("qrencode", ["-8", "-l", ec, "-m", "0", "-t", "ASCII", text]);
  expect(r.status).toBe(0);
  return r.stdout
    .toString()
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => Array.from({ length: l.length / 2 }, (_, i) => l[2 * i] === "#"));
}

/** The mask from the format bits next to the top-left finder (row 8, columns 0-4 and 7, 8). */
function maskOf(m: boolean[][]): number {
  const bits = [0, 1, 2, 3, 4, 5, 7, 8].map((c) => (m[8]![c] ? 1 : 0));
  let v = 0;
  for (let i = 0; i < 5; i++) v = (v << 1) | bits[i]!; // bits 14..10 of the 15-bit word
  return (v ^ (0x5412 >> 10)) & 0b111;
}

const CASES: [string, EcLevel][] = [
  ["hello", "M"],
  ["0123456789abcdef".repeat(4), "M"], // a pairing token: version 5-M
  ["x".repeat(17), "L"],
  ["qubes-air".repeat(5), "Q"],
  ["y".repeat(60), "H"],
  ["z".repeat(150), "L"], // version 7: version information blocks
  ["w".repeat(210), "M"], // version 10: 16-bit length field, two block groups
  ["v".repeat(120), "Q"],
  ["ü€ bytes", "H"],
];

describe.skipIf(lacking(has("qrencode") ? null : "qrencode"))("QR encoder matches qrencode", () => {
  for (const [text, ec] of CASES) {
    test(`${text.slice(0, 12)}… (${Buffer.byteLength(text)} bytes, ${ec})`, () => {
      const ref = reference(text, ec);
      const ours = encodeQr(text, { ec, mask: maskOf(ref) });
      expect(ours.size).toBe(ref.length);
      expect(ours.modules.map((row) => row.map((d) => (d ? "#" : ".")).join(""))).toEqual(
        ref.map((row) => row.map((d) => (d ? "#" : ".")).join("")),
      );
    });
  }
});

describe("QR encoder", () => {
  test("the automatic mask is the lowest penalty; a token is version 5-M; rendering", () => {
    const token = "ab".repeat(32);
    const auto = encodeQr(token);
    expect(auto.version).toBe(5);
    expect(auto.size).toBe(37);
    for (let m = 0; m < 8; m++) {
      expect(penalty(encodeQr(token, { mask: m }).modules)).toBeGreaterThanOrEqual(penalty(auto.modules));
    }
    const lines = renderQr(auto).trimEnd().split("\n");
    expect(lines).toHaveLength(Math.ceil((37 + 4) / 2));
    expect(lines[0]).toStartWith("\x1b[30;47m");
    expect(lines.every((l) => l.endsWith("\x1b[0m"))).toBe(true);
    expect(() => encodeQr("x".repeat(400), { ec: "H" })).toThrow(/do not fit/);
  });
});
