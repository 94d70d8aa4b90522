/**
 * Loads the framing seeds in test/vectors/framing/*.hex: one input per file, with
 *   "# target: serial|tcp", "# expect: ok|incomplete|<ProtocolErrorCode>", optional
 *   "# frames: N" (tcp: frames delivered before the end or the error), then hex lines
 *   (whitespace ignored) or "*COUNT BYTE" repeat lines. The expected outcomes are checked in
 *   core/wire/serial-frame.test.ts and tcp-frame.test.ts; test/fuzz/framing.fuzz.test.ts starts its
 *   properties from the same inputs. generate-size-seeds.ts rewrites the size-edge seeds.
 * Must never: accept a malformed seed file (it throws, failing whichever test loads it).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface FramingSeed {
  readonly file: string;
  readonly target: "serial" | "tcp";
  /** "ok", "incomplete" (tcp: more bytes needed) or a ProtocolError code. */
  readonly expect: string;
  /** tcp: how many frames come out before the end or the error. */
  readonly frames: number;
  readonly bytes: Uint8Array;
}

const DIR = join(import.meta.dir, "framing");

export function loadFramingSeeds(): FramingSeed[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith(".hex"))
    .sort()
    .map((file) => {
      const text = readFileSync(join(DIR, file), "utf8");
      const meta = (key: string) => text.match(new RegExp(`^# ${key}: (\\S+)$`, "m"))?.[1];
      const target = meta("target");
      const expected = meta("expect");
      if ((target !== "serial" && target !== "tcp") || expected === undefined)
        throw new Error(`${file}: needs "# target: serial|tcp" and "# expect: ..."`);
      return {
        file,
        target,
        expect: expected,
        frames: Number(meta("frames") ?? 0),
        bytes: parseHex(file, text),
      };
    });
}

function parseHex(file: string, text: string): Uint8Array {
  const out: number[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.trim()) continue;
    const rep = line.match(/^\*(\d+) ([0-9a-f]{2})$/);
    if (rep) {
      for (let i = Number(rep[1]); i > 0; i--) out.push(Number.parseInt(rep[2]!, 16));
      continue;
    }
    const hex = line.replace(/\s+/g, "");
    if (!/^([0-9a-f]{2})*$/.test(hex)) throw new Error(`${file}: not hex: ${line.slice(0, 40)}`);
    for (let i = 0; i < hex.length; i += 2) out.push(Number.parseInt(hex.slice(i, i + 2), 16));
  }
  return Uint8Array.from(out);
}
