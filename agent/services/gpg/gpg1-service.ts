/**
 * `qubes.Gpg` (split-gpg v1) on the device. Reads the 1028-byte option header (in a loop, under
 * a time limit), checks the options exactly as upstream's server does (core/gpg/v1-options.ts),
 * asks for a physical confirmation when the request can use a secret key, runs gpg with a
 * command line rebuilt from the parsed options (core/gpg/v1-argv.ts: fixed safe prefix, pinned
 * --homedir) and relays the multiplexed fd frames (gpg1-pumps.ts), with caps on bytes each way
 * and on wall time. Ends with the exit frame -(status+1), as upstream.
 *
 * A refused request gets no frames at all (the upstream client then exits 1) and a line on the
 * service's stderr; a denied confirmation gets a line on the client's stderr stream and exit
 * status 1; a limit kills gpg and reports 124 (wall time) or 2 (bytes). Every gpg run has its
 * request record on disk before gpg starts (audit/operation.ts); if it cannot be written, gpg is
 * not started and the client gets a line on its stderr stream and exit status 1. The result
 * record (exit status, byte counts) follows. When an approver's digest grant waits for the
 * client, a signature's data is read (up to APPROVE_LIMITS.prereadBytes) before the
 * confirmation so its digest can be matched, then replayed unchanged (v1-preread.ts).
 * Must never: run gpg before the options are checked and, when needed, confirmed, and its
 * request record is on disk.
 */
import { describeKey, type KeyEntry, parseSecretKeyListing } from "../../../core/gpg/keyring.ts";
import { buildGpgArgv, secretUse, signerSpecs } from "../../../core/gpg/v1-argv.ts";
import {
  parseV1Args,
  signatureHashIsSha2,
  V1OptionError,
  type V1Request,
} from "../../../core/gpg/v1-options.ts";
import {
  decodeHeader,
  encodeExitFrame,
  encodeFrames,
  HEADER_SIZE,
  V1WireError,
} from "../../../core/gpg/v1-wire.ts";
import { GPG1_LIMITS, Service } from "../../../core/qrexec/services.ts";
import { exitStatusOf, platform } from "../../../platform/index.ts";
import type { ByteSource } from "../../../transport/transport.ts";
import type { ConfirmationManager } from "../../confirmation/manager.ts";
import { type Log, makeLog } from "../../log.ts";
import type { AuditWriter } from "../audit/log.ts";
import { AUDIT_REFUSAL_MESSAGE, recordRequest, recordResult } from "../audit/operation.ts";
import { capture, type GpgTools, gpgEnv, loadKeyring } from "./gpg-tools.ts";
import { FrameWriter, pumpClientInput, pumpOutput } from "./gpg1-pumps.ts";
import type { GpgServiceIo } from "./gpg2-service.ts";
import { spawnWithFds } from "./spawn-fds.ts";
import { prereadData } from "./v1-preread.ts";

export interface Gpg1Limits {
  /** Defaults: GPG1_LIMITS (core/qrexec/services.ts). */
  readonly maxInputBytes?: number;
  readonly maxOutputBytes?: number;
  readonly wallMs?: number;
  readonly headerMs?: number;
}

export interface Gpg1Context extends GpgTools {
  readonly source: string;
  /** The GnuPG home gpg runs in (--homedir), normally holding secret subkeys only. */
  readonly gnupgHome: string;
  readonly confirm: ConfirmationManager;
  readonly audit: AuditWriter;
  readonly limits?: Gpg1Limits;
  readonly log?: Log;
}

export const EXIT_WALL_TIME = 124;
export const EXIT_BYTES = 2;

const enc = (s: string) => new TextEncoder().encode(s);

export async function serveGpg1(io: GpgServiceIo, ctx: Gpg1Context): Promise<number> {
  const log = ctx.log ?? makeLog();
  const lim = ctx.limits ?? {};
  const audit = (operation: string, decision: string, result: string, key = "", detail = "") =>
    ctx.audit
      .append({ client: ctx.source, service: Service.Gpg, operation, key, decision, result, detail })
      .catch(() => log("audit-append-failed", { service: Service.Gpg }));
  const refuse = async (code: string, message: string, recorded = false) => {
    log("gpg1-refused", { client: ctx.source, reason: code });
    if (!recorded) await audit("refused", "refused", code);
    await io.stderr.write(enc(`qubes-air: qubes.Gpg: ${message}\n`)).catch(() => {});
    await io.stdout.closeWrite().catch(() => {});
    return 1;
  };

  const wallEnd = platform.monotonicMs() + (lim.wallMs ?? GPG1_LIMITS.wallMs);
  const head = await readHeader(
    io.stdin,
    Math.min(lim.headerMs ?? GPG1_LIMITS.headerMs, lim.wallMs ?? GPG1_LIMITS.wallMs),
  );
  if (head === "short") return refuse("header-short", "the request header is incomplete");
  if (head === "timeout") return refuse("header-timeout", "the request header did not arrive in time");
  let req: V1Request;
  try {
    req = parseV1Args(decodeHeader(head.header));
  } catch (e) {
    if (e instanceof V1WireError) return refuse(e.reason, "malformed request header");
    if (e instanceof V1OptionError) return refuse("option", e.message);
    throw e;
  }

  const use = secretUse(req);
  let first = head.rest;
  let stdin: ByteSource = io.stdin;
  const out = new FrameWriter(io.stdout);
  let decision = "none";
  let keyText = "";
  if (use) {
    const signer = use === "decrypt" ? "a key named in the message" : await describeSigners(req, ctx);
    if (signer === null) return refuse("unknown-signer", "the signing key is not on this device");
    keyText = signer;
    // A digest grant for this client matches a signature by its data: read the data first.
    // Only when gpg cannot be told to sign a weaker hash than the digest the grant names.
    const algos =
      use === "decrypt" || !signatureHashIsSha2(req) ? [] : ctx.confirm.grantDigestAlgos(ctx.source);
    let dataDigests: ReadonlyMap<string, string> | undefined;
    if (algos.length > 0) {
      const pre = await prereadData(
        first,
        stdin,
        req.inputFds.length,
        algos,
        wallEnd - platform.monotonicMs(),
      );
      first = pre.raw;
      if (pre.ended) stdin = endedSource(stdin);
      if (pre.digests) dataDigests = pre.digests;
    }
    const d = await ctx.confirm.decide({
      client: ctx.source,
      service: Service.Gpg,
      operation: use,
      key: keyText,
      ...(dataDigests ? { dataDigests } : {}),
    });
    decision = d.decision;
    if (!d.approved) {
      await audit(use, d.decision, "refused", keyText);
      await out.send(encodeFrames(1, enc("qubes-air: the request was not confirmed on the device\n")));
      await out.send(encodeExitFrame(1)).catch(() => {});
      await io.stdout.closeWrite().catch(() => {});
      return 0;
    }
  }

  const request = await recordRequest(
    ctx.audit,
    { client: ctx.source, service: Service.Gpg, operation: use ?? "public", key: keyText, decision },
    log,
  );
  if (!request) {
    await out.send(encodeFrames(1, enc(`qubes-air: ${AUDIT_REFUSAL_MESSAGE}\n`))).catch(() => {});
    await out.send(encodeExitFrame(1)).catch(() => {});
    await io.stdout.closeWrite().catch(() => {});
    return 0;
  }

  const inv = buildGpgArgv(req, ctx.gpg ?? "gpg", ctx.gnupgHome);
  let child: Awaited<ReturnType<typeof spawnWithFds>>;
  try {
    child = await spawnWithFds(inv.argv, {
      env: gpgEnv(),
      inputFds: inv.childInputFds,
      outputFds: inv.childOutputFds,
    });
  } catch {
    await recordResult(ctx.audit, request, "spawn-failed", "", log);
    return refuse("spawn", "gpg could not be started on the device", true);
  }

  let limitStatus: number | null = null;
  let framingFault = false;
  const stopper = new AbortController();
  const stopResolve = () => stopper.abort();
  const halt = (status: number, message: string) => {
    if (limitStatus !== null) return;
    limitStatus = status;
    log("gpg1-limit", { client: ctx.source, status });
    void out.send(encodeFrames(1, enc(`qubes-air: ${message}\n`))).catch(() => {});
    child.kill("SIGKILL");
    stopResolve();
  };
  const wall = setTimeout(
    () => halt(EXIT_WALL_TIME, "the request ran longer than the device allows"),
    wallEnd - platform.monotonicMs(),
  );
  const inStats = { bytes: 0 };
  const outStats = { bytes: 0 };
  const maxOut = lim.maxOutputBytes ?? GPG1_LIMITS.maxOutputBytes;
  const outputs = inv.childOutputFds.map((fd, k) =>
    pumpOutput(child.outputs.get(fd)!, k, out, {
      maxBytes: maxOut,
      stats: outStats,
      over: () => halt(EXIT_BYTES, "the output is larger than the device allows"),
    }),
  );
  const input = pumpClientInput(
    first,
    stdin,
    inv.childInputFds.map((fd) => child.inputs.get(fd)!),
    {
      maxBytes: lim.maxInputBytes ?? GPG1_LIMITS.maxInputBytes,
      stop: stopper.signal,
      stats: inStats,
      over: () => new Error("input over limit"),
    },
  ).catch((e) => {
    if (e instanceof V1WireError) {
      log("gpg1-framing", { client: ctx.source, code: e.reason });
      framingFault = true;
      child.kill("SIGKILL");
      stopResolve();
    } else halt(EXIT_BYTES, "the input is larger than the device allows");
  });

  const info = await child.exited;
  await Promise.all(outputs);
  clearTimeout(wall);
  stopResolve();
  void input;
  const status = limitStatus ?? exitStatusOf(info);
  const detail = `in ${inStats.bytes} out ${outStats.bytes}`;
  if (framingFault) {
    // Like upstream: a framing fault ends the call without an exit frame.
    await io.stdout.closeWrite().catch(() => {});
    await recordResult(ctx.audit, request, "framing-fault", detail, log);
    return 1;
  }
  await out.send(encodeExitFrame(status & 0xff)).catch(() => {});
  await io.stdout.closeWrite().catch(() => {});
  await recordResult(ctx.audit, request, `exit ${status}`, detail, log);
  return 0;
}

/** `src` after it returned EOF once: every further read is EOF too. */
function endedSource(src: ByteSource): ByteSource {
  return {
    description: src.description,
    closed: src.closed,
    read: async () => null,
    close: () => src.close(),
  };
}

/** Reads exactly the header, however the client's writes were split. */
async function readHeader(
  src: ByteSource,
  ms: number,
): Promise<{ header: Uint8Array; rest: Uint8Array } | "short" | "timeout"> {
  const buf = new Uint8Array(HEADER_SIZE);
  let have = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
  try {
    while (have < HEADER_SIZE) {
      const c = await Promise.race([src.read(), timeout]);
      if (c === "timeout") return "timeout";
      if (c === null) return "short";
      const take = Math.min(c.length, HEADER_SIZE - have);
      buf.set(c.subarray(0, take), have);
      have += take;
      if (have === HEADER_SIZE) return { header: buf, rest: c.subarray(take) };
    }
    return { header: buf, rest: new Uint8Array(0) };
  } finally {
    clearTimeout(timer);
  }
}

function signingEntry(p: { key: KeyEntry; subkeys: readonly KeyEntry[] }): KeyEntry | undefined {
  const usable = (e: KeyEntry) => e.secretHere && /s/.test(e.capabilities) && !/[re]/.test(e.validity);
  return p.subkeys.find(usable) ?? (usable(p.key) ? p.key : undefined);
}

/** The device's description of the key(s) a signing request will use; null if none is here. */
async function describeSigners(req: V1Request, ctx: Gpg1Context): Promise<string | null> {
  const specs = signerSpecs(req);
  let primaries: readonly { key: KeyEntry; subkeys: readonly KeyEntry[] }[];
  if (specs.length === 0) primaries = (await loadKeyring(ctx.gnupgHome, ctx)).primaries;
  else {
    const r = await capture([
      ctx.gpg ?? "gpg",
      "--homedir",
      ctx.gnupgHome,
      ...["--batch", "--no-tty", "--with-colons", "--fixed-list-mode", "--with-keygrip"],
      "--list-secret-keys",
      "--",
      ...specs,
    ]);
    primaries = parseSecretKeyListing(new TextDecoder().decode(r.stdout)).primaries;
  }
  const found = primaries.map(signingEntry).filter((e): e is KeyEntry => e !== undefined);
  if (found.length === 0) return null;
  return (specs.length === 0 ? found.slice(0, 1) : found).map(describeKey).join("; ");
}
