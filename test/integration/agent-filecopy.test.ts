/**
 * The agent's built-in services through the real process: qubes.Filecopy lands files in
 * QubesIncoming/<source>/ and answers with the qfile reply; qubesair.CopyFrom (when policy
 * allows it) sends files of the export directory back as a qfile stream that the host side
 * unpacks (its refusals: copy-from-export.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCall } from "../../calls/caller.ts";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { encodeCallRequest } from "../../core/qrexec/call-protocol.ts";
import {
  crc32,
  decodeResultHeader,
  EILSEQ,
  encodeFileHeader,
  FILE_HEADER_SIZE,
} from "../../core/qrexec/qfile.ts";
import type { Connected } from "../../core/session/establish.ts";
import { memoryPair } from "../../transport/memory.ts";
import { type AgentProcess, cleanup, DEVICE, makeDir, startAgent } from "../helpers/agent/harness.ts";
import { hostCall, pairHost } from "../helpers/agent/host-side.ts";

let agent: AgentProcess;
let host: Connected;

beforeAll(async () => {
  agent = await startAgent({ policy: { "30-test.policy": "qubesair.CopyFrom * work @anyvm allow\n" } });
  host = (await pairHost(agent)).c;
});

afterAll(cleanup);

/** A qfile stream of regular files (name -> content), with the end marker. */
function qfileStream(files: Record<string, string>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [name, content] of Object.entries(files)) {
    const nameBytes = Buffer.from(`${name}\0`);
    const data = Buffer.from(content);
    const header = encodeFileHeader({
      namelen: nameBytes.length,
      mode: 0o100640,
      filelen: BigInt(data.length),
      atime: 1_700_000_000,
      atimeNsec: 0,
      mtime: 1_700_000_000,
      mtimeNsec: 0,
    });
    parts.push(header, nameBytes, data);
  }
  parts.push(new Uint8Array(FILE_HEADER_SIZE));
  return Buffer.concat(parts);
}

describe("qubes.Filecopy", () => {
  test("a file lands in QubesIncoming/<source>/ with its mode; the reply carries code 0 and the CRC", async () => {
    const stream = qfileStream({ "hello.txt": "hi there\n" });
    const r = await hostCall(host, { source: "work", service: "qubes.Filecopy" }, stream);
    expect(r.status).toBe(0);
    const reply = decodeResultHeader(r.stdout.subarray(0, 16));
    expect(reply.code).toBe(0);
    expect(Number(reply.crc)).toBe(crc32(stream));
    const landed = join(agent.dir, "home", "QubesIncoming", "work", "hello.txt");
    expect(readFileSync(landed, "utf8")).toBe("hi there\n");
    expect(statSync(landed).mode & 0o777).toBe(0o640);
    expect(statSync(join(agent.dir, "home", "QubesIncoming", "work")).mode & 0o777).toBe(0o700);
    await agent.waitLine(/call source=work service=qubes.Filecopy\+ decision=allow .*status=0/);
  });

  test("an unsafe name is refused with EILSEQ and nothing is written", async () => {
    const r = await hostCall(
      host,
      { source: "other", service: "qubes.Filecopy" },
      qfileStream({ "../escape": "x" }),
    );
    expect(r.status).toBe(EILSEQ);
    expect(decodeResultHeader(r.stdout.subarray(0, 16)).code).toBe(EILSEQ);
    expect(existsSync(join(agent.dir, "home", "QubesIncoming", "escape"))).toBe(false);
  });

  test("an argument other than allow-all-names exits 1", async () => {
    const r = await hostCall(host, { service: "qubes.Filecopy", arg: "bogus" }, qfileStream({}));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("invalid argument");
  });
});

describe("qubesair.CopyFrom", () => {
  test("files of the export directory come back as a qfile stream the host unpacks", async () => {
    const src = join(agent.dir, "home", "QubesOutgoing");
    mkdirSync(join(src, "dir"), { recursive: true });
    writeFileSync(join(src, "dir", "a.txt"), "alpha\n");
    writeFileSync(join(src, "b.bin"), Buffer.alloc(200_000, 7));
    mkdirSync(join(src, "deeper", "still"), { recursive: true });
    writeFileSync(join(src, "deeper", "still", "in-export.txt"), "relative to the export directory\n");
    // relative, absolute inside the export directory, and a nested relative path
    const paths = Buffer.from(`dir\0${join(src, "b.bin")}\0deeper/./still/in-export.txt`);
    const request = Buffer.alloc(4 + paths.length);
    request.writeUInt32BE(paths.length, 0);
    paths.copy(request, 4);

    // stdout of the call -> the unpacker's source; the unpacker's reply -> stdin of the call.
    const [toUnpacker, fromCall] = memoryPair();
    const [toCall, fromUnpacker] = memoryPair();
    await toCall.write(request);
    const dest = makeDir();
    const unpacked = unpackQfile(fromCall, toCall, { dir: join(dest, "in") });
    const channel = host.vchan.open(
      encodeCallRequest({ source: "work", target: DEVICE, service: "qubesair.CopyFrom", arg: "" }),
    );
    let stderr = "";
    const { status } = await runCall(channel, {
      stdin: fromUnpacker,
      stdout: { write: (d) => toUnpacker.write(d) },
      stderr: {
        write: async (d) => {
          stderr += Buffer.from(d).toString();
        },
      },
    });
    await toUnpacker.closeWrite();
    expect((await unpacked).code).toBe(0);
    expect([status, stderr]).toEqual([0, ""]);
    expect(readFileSync(join(dest, "in", "dir", "a.txt"), "utf8")).toBe("alpha\n");
    expect(readFileSync(join(dest, "in", "b.bin")).equals(Buffer.alloc(200_000, 7))).toBe(true);
    expect(readFileSync(join(dest, "in", "in-export.txt"), "utf8")).toBe(
      "relative to the export directory\n",
    );
  });

  test("a missing file ends the call with 1 and a message", async () => {
    const paths = Buffer.from("nonexistent/file");
    const request = Buffer.alloc(4 + paths.length);
    request.writeUInt32BE(paths.length, 0);
    paths.copy(request, 4);
    const r = await hostCall(host, { service: "qubesair.CopyFrom" }, request);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('qubesair.CopyFrom: "nonexistent/file" does not exist in the export directory\n');
  });

  test("a malformed request ends the call with 1 and says what was wrong, in our words", async () => {
    const empty = await hostCall(host, { service: "qubesair.CopyFrom" }, new Uint8Array(4));
    expect(empty.status).toBe(1);
    expect(empty.stderr).toContain("qubesair.CopyFrom: empty path in the request\n");
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0xffffffff, 0);
    const over = await hostCall(host, { service: "qubesair.CopyFrom" }, huge);
    expect(over.status).toBe(1);
    expect(over.stderr).toMatch(/qubesair\.CopyFrom: the path list is over \d+ bytes\n/);
  });
});
