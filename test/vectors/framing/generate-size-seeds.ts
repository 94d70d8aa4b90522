/**
 * Regenerates the serial size-edge seeds of this corpus from the limits in core/wire/limits.ts
 * (run after changing SERIAL_MAX_BODY): `bun test/vectors/framing/generate-size-seeds.ts`.
 * Format: `# comment` lines, hex byte lines, and `*COUNT BYTE` for a run of one byte.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cobsEncode } from "../../../core/wire/cobs.ts";
import { crc32c } from "../../../core/wire/crc32c.ts";
import { SERIAL_CRC_BYTES, SERIAL_HEADER_BYTES, SERIAL_MAX_BODY } from "../../../core/wire/limits.ts";
import { SERIAL_MAX_ENCODED } from "../../../core/wire/serial-frame.ts";

/** type TRANSPORT, epoch 2, counter 0x030101010101ff2a (no zero bytes), a body of 0x5a, the CRC. */
function rawFrame(bodyLength: number): Uint8Array {
  const raw = new Uint8Array(SERIAL_HEADER_BYTES + bodyLength + SERIAL_CRC_BYTES);
  raw.set([0x02, 0x02, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff, 0x2a]);
  raw.fill(0x5a, SERIAL_HEADER_BYTES, SERIAL_HEADER_BYTES + bodyLength);
  const crc = crc32c(raw.subarray(0, raw.length - SERIAL_CRC_BYTES));
  new DataView(raw.buffer).setUint32(raw.length - SERIAL_CRC_BYTES, crc, false);
  return raw;
}

function toSeed(bytes: Uint8Array): string {
  const lines: string[] = [];
  let hex = "";
  for (let i = 0; i < bytes.length; ) {
    let run = 1;
    while (i + run < bytes.length && bytes[i + run] === bytes[i]) run++;
    const b = bytes[i]!.toString(16).padStart(2, "0");
    if (run >= 8) {
      if (hex) lines.push(hex);
      hex = "";
      lines.push(`*${run} ${b}`);
    } else hex += b.repeat(run);
    i += run;
  }
  if (hex) lines.push(hex);
  return lines.join("\n");
}

const dir = import.meta.dir;
const withDelimiter = (enc: Uint8Array) => Uint8Array.from([...enc, 0]);
const write = (name: string, comment: string, expect: string, bytes: Uint8Array) =>
  writeFileSync(join(dir, name), `# ${comment}\n# target: serial\n# expect: ${expect}\n${toSeed(bytes)}\n`);

write(
  "serial-max-body.hex",
  `Body of exactly SERIAL_MAX_BODY (${SERIAL_MAX_BODY}) non-zero bytes: the largest legal frame and the COBS worst case.`,
  "ok",
  withDelimiter(cobsEncode(rawFrame(SERIAL_MAX_BODY))),
);
write(
  "serial-body-one-over.hex",
  "Body of SERIAL_MAX_BODY + 1 bytes with a correct CRC.",
  "frame-too-large",
  withDelimiter(cobsEncode(rawFrame(SERIAL_MAX_BODY + 1))),
);
write(
  "serial-encoded-one-over.hex",
  "One byte more than SERIAL_MAX_ENCODED of non-zero bytes.",
  "frame-too-large",
  Uint8Array.from([...new Uint8Array(SERIAL_MAX_ENCODED + 1).fill(1), 0]),
);
