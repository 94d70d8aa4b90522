/**
 * Services the agent answers itself, without a process (after policy, like any service):
 *
 * qubes.Filecopy[+allow-all-names]   receive a qfile stream into
 *                                    <incomingDir>/QubesIncoming/<source>/ (qfile.md §3, §4);
 *                                    any other argument exits 1, as upstream's script does.
 *                                    Exit status = the reply's code & 0xff. Limits per copy
 *                                    (bytes, entries: EDQUOT) and a free-space floor (ENOSPC)
 *                                    from config.fileCopy (filecopy-space.ts), each said on
 *                                    stderr; a stopped copy leaves no temporary file.
 * qubesair.CopyFrom                  the host's `copy-from`: stdin starts with a u32 BE length and
 *                                    that many bytes of NUL-separated paths inside the export
 *                                    directory (relative to it, or absolute inside it), then
 *                                    carries the host's qfile reply; stdout is the qfile stream of
 *                                    those paths. Every path and every entry below it is checked
 *                                    (export-dir.ts) before the first byte is sent. Exit 0, or 1
 *                                    with a message.
 * Must never: write outside the incoming directory, read more of the request than its cap, or
 * send anything from outside the export directory or of the agent's own secrets.
 */
import { join } from "node:path";
import { CallOutput } from "../../calls/callee.ts";
import type { CallChannel } from "../../calls/channel.ts";
import { channelSource, drain } from "../../calls/channel.ts";
import { packQfile, scanTree } from "../../calls/qfile-pack.ts";
import { unpackQfile } from "../../calls/qfile-unpack.ts";
import { ConfigError, ProtocolError } from "../../core/errors.ts";
import type { CallRequest } from "../../core/qrexec/call-protocol.ts";
import { qfileErrorMessage } from "../../core/qrexec/qfile.ts";
import { COPY_FROM_REQUEST_MAX_BYTES, FILECOPY_LIMITS, Service } from "../../core/qrexec/services.ts";
import type { FileCopyConfig } from "../config.ts";
import type { Log } from "../log.ts";
import type { ExportConfig } from "../protected-paths.ts";
import { ExportRefused, ExportTree } from "./export-dir.ts";
import { SpaceGuard } from "./filecopy-space.ts";

/** What a built-in gets from the agent (serve-call.ts passes the whole Config and the log). */
export interface BuiltinOptions extends ExportConfig {
  readonly incomingDir: string;
  /** Default FILECOPY_LIMITS. */
  readonly fileCopy?: FileCopyConfig;
  readonly log?: Log;
}

export type Builtin = (channel: CallChannel, request: CallRequest, o: BuiltinOptions) => Promise<number>;

export const BUILTINS: ReadonlyMap<string, Builtin> = new Map([
  [Service.Filecopy, filecopy],
  [Service.CopyFrom, copyFrom],
]);

async function filecopy(channel: CallChannel, r: CallRequest, o: BuiltinOptions): Promise<number> {
  const out = new CallOutput(channel);
  if (r.arg !== "" && r.arg !== "allow-all-names") {
    await out.stderr.write(new TextEncoder().encode(`${Service.Filecopy}: invalid argument\n`));
    return finish(out, channel, 1);
  }
  const dir = join(o.incomingDir, "QubesIncoming", r.source);
  const lim = o.fileCopy ?? FILECOPY_LIMITS;
  const result = await unpackQfile(channelSource(channel), out.stdout, {
    dir,
    allowAllNames: r.arg === "allow-all-names",
    maxBytes: lim.maxBytes,
    maxFiles: lim.maxFiles,
    reserve: (d, bytes) => SPACE.reserve(d, o.stateDir, bytes, lim),
  });
  if (result.stoppedBy) {
    o.log?.("filecopy-limit", { source: r.source, limit: result.stoppedBy });
    const say = {
      bytes: `over the limit of ${lim.maxBytes} bytes per copy`,
      files: `over the limit of ${lim.maxFiles} files per copy`,
      space: "no space left above the reserve the device keeps for its state",
    }[result.stoppedBy];
    await out.stderr
      .write(new TextEncoder().encode(`File copy: ${say}; the file being received was not kept\n`))
      .catch(() => {});
  }
  return finish(out, channel, result.code & 0xff);
}

/** The copies in flight share one view of the free space. */
const SPACE = new SpaceGuard();

async function copyFrom(channel: CallChannel, r: CallRequest, o: BuiltinOptions): Promise<number> {
  const out = new CallOutput(channel);
  const fail = async (message: string) => {
    await out.stderr.write(new TextEncoder().encode(`${Service.CopyFrom}: ${message}\n`)).catch(() => {});
    return finish(out, channel, 1);
  };
  const source = new PrefixedSource(channel);
  let paths: string[];
  try {
    paths = parsePathList(await source.take(4, COPY_FROM_REQUEST_MAX_BYTES));
  } catch (error) {
    // A bad request is the host's fault (our own wording in detail); anything else (the channel
    // went away) is said as it is.
    return fail(error instanceof ProtocolError && error.detail ? error.detail : (error as Error).message);
  }
  let tree: ExportTree | null = null;
  try {
    tree = await ExportTree.open(o);
    const resolved: string[] = [];
    for (const p of paths) resolved.push(await tree.resolve(p));
    // The whole request is checked before the first byte goes out: a refusal sends nothing.
    await scanTree(resolved, { confined: tree });
    const result = await packQfile(
      resolved,
      out.stdout,
      channelSource(channel, () => source.read()),
      {
        confined: tree,
      },
    );
    if (result.code !== 0) return fail(`the receiver refused: ${qfileErrorMessage(result.code)}`);
    return finish(out, channel, 0);
  } catch (error) {
    if (error instanceof ExportRefused) {
      o.log?.("copy-from-refused", { source: r.source, why: error.code });
      return fail(error.message);
    }
    if (error instanceof ConfigError) return fail(error.message);
    if (error instanceof ProtocolError) return fail("the receiver's reply was missing or wrong");
    throw error;
  } finally {
    await tree?.close();
  }
}

async function finish(out: CallOutput, channel: CallChannel, status: number): Promise<number> {
  await out.finish(status);
  void drain(channel);
  return status;
}

/** u32 BE length, then NUL-separated paths (a trailing NUL is allowed). */
function parsePathList(bytes: Uint8Array): string[] {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ProtocolError("schema", "the path list is not UTF-8");
  }
  const parts = text.split("\0");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
  if (parts.length === 0 || parts.some((p) => p === ""))
    throw new ProtocolError("schema", "empty path in the request");
  return parts;
}

/** The channel's stdin with a length-prefixed head taken off first; the rest reads on as usual. */
class PrefixedSource {
  private pending: Uint8Array | null = null;
  constructor(private readonly channel: CallChannel) {}

  /** Reads a u32 BE length (lengthBytes = 4) and then that many bytes. */
  async take(lengthBytes: 4, max: number): Promise<Uint8Array> {
    const head = await this.exactly(lengthBytes);
    const n = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, false);
    if (n > max) throw new ProtocolError("frame-too-large", `the path list is over ${max} bytes`);
    return this.exactly(n);
  }

  read(): Promise<Uint8Array | null> {
    const p = this.pending;
    this.pending = null;
    return p ? Promise.resolve(p) : this.channel.read();
  }

  private async exactly(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      const chunk = await this.read();
      if (chunk === null) throw new ProtocolError("frame-truncated", "the request ended early");
      const use = Math.min(n - have, chunk.length);
      out.set(chunk.subarray(0, use), have);
      have += use;
      if (use < chunk.length) this.pending = chunk.subarray(use);
    }
    return out;
  }
}
