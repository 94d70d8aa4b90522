/**
 * qubes.GpgImportKey on the device (docs/split-gpg.md "qubes.GpgImportKey"), as upstream
 * split-gpg offers it (`qubes-gpg-import-key FILE` in the client: the key data on stdin, gpg's
 * messages back on stderr, gpg's exit status), but narrower: public keys only.
 *
 *   1. The whole key data is read, up to GPG_IMPORT_LIMITS.maxBytes within readMs.
 *   2. It is parsed into OpenPGP packets (core/gpg/openpgp-import.ts): a secret key, a secret
 *      subkey, or any packet a public key does not have refuses the whole import, before any
 *      prompt and before gpg runs (an audit record "refused" says why).
 *   3. The device asks for the press, naming the client and the fingerprints it computed.
 *   4. The request record goes to the audit log; only once it is on disk does
 *      `gpg --homedir <served home> --import` run, fed our re-encoding of the parsed packets,
 *      with `--import-options import-clean` and no network.
 *   5. The result record (gpg's exit status) follows.
 * Must never: let gpg read the client's bytes as sent, import into any home but the served
 * one, or show the client's text (user IDs) on the device.
 */
import { concatBytes } from "../../../core/bytes.ts";
import { KeyImportError, parseKeyImport } from "../../../core/gpg/openpgp-import.ts";
import { GPG_IMPORT_LIMITS, Service } from "../../../core/qrexec/services.ts";
import type { ByteSource } from "../../../transport/transport.ts";
import type { ConfirmationManager } from "../../confirmation/manager.ts";
import { type Log, makeLog } from "../../log.ts";
import type { AuditWriter } from "../audit/log.ts";
import { AUDIT_REFUSAL_MESSAGE, recordRequest, recordResult } from "../audit/operation.ts";
import { capture, type GpgTools } from "./gpg-tools.ts";
import type { GpgServiceIo } from "./gpg2-service.ts";

export interface ImportKeyContext extends GpgTools {
  /** The calling qube, from the call (never from the payload). */
  readonly source: string;
  /** The served GnuPG home: the keyring the public keys go into. */
  readonly gnupgHome: string;
  readonly confirm: ConfirmationManager;
  readonly audit: AuditWriter;
  readonly log?: Log;
  /** Default GPG_IMPORT_LIMITS.readMs. */
  readonly readMs?: number;
}

const enc = (s: string) => new TextEncoder().encode(s);

export async function serveGpgImportKey(io: GpgServiceIo, ctx: ImportKeyContext): Promise<number> {
  const log = ctx.log ?? makeLog();
  const say = (m: string) =>
    io.stderr.write(enc(`qubes-air: ${Service.GpgImportKey}: ${m}\n`)).catch(() => {});
  const refuse = async (code: string, message: string) => {
    log("gpg-import-refused", { client: ctx.source, reason: code });
    await ctx.audit
      .append({
        client: ctx.source,
        service: Service.GpgImportKey,
        operation: "import",
        key: "",
        decision: "refused",
        result: code,
      })
      .catch(() => log("audit-append-failed", { service: Service.GpgImportKey }));
    await say(message);
    return 1;
  };

  const data = await readAll(io.stdin, ctx.readMs ?? GPG_IMPORT_LIMITS.readMs);
  if (data === "too-large") return refuse("too-large", `key data over ${GPG_IMPORT_LIMITS.maxBytes} bytes`);
  if (data === "timeout") return refuse("timeout", "the key data did not arrive in time");
  let parsed: ReturnType<typeof parseKeyImport>;
  try {
    parsed = parseKeyImport(data);
  } catch (e) {
    if (!(e instanceof KeyImportError)) throw e;
    const why =
      e.reason === "secret-key"
        ? "secret key material is never imported through qubes.GpgImportKey; nothing was imported"
        : `${e.detail ?? "not public key data"}; nothing was imported`;
    return refuse(e.reason, why);
  }
  const fingerprints = parsed.keys.map((k) => k.fingerprint);
  const key =
    fingerprints.length <= 3
      ? fingerprints.join(", ")
      : `${fingerprints.slice(0, 3).join(", ")} and ${fingerprints.length - 3} more`;
  const keyText = `public key${fingerprints.length === 1 ? "" : "s"} ${key}`;
  const d = await ctx.confirm.decide({
    client: ctx.source,
    service: Service.GpgImportKey,
    operation: "import",
    key: keyText,
  });
  if (!d.approved) {
    await ctx.audit
      .append({
        client: ctx.source,
        service: Service.GpgImportKey,
        operation: "import",
        key: keyText,
        decision: d.decision,
        result: "refused",
      })
      .catch(() => log("audit-append-failed", { service: Service.GpgImportKey }));
    await say("the import was not confirmed on the device");
    return 1;
  }
  const request = await recordRequest(
    ctx.audit,
    {
      client: ctx.source,
      service: Service.GpgImportKey,
      operation: "import",
      key: keyText,
      decision: d.decision,
    },
    log,
  );
  if (!request) {
    await say(AUDIT_REFUSAL_MESSAGE);
    return 1;
  }
  let status: number;
  let stderr: Uint8Array = new Uint8Array(0);
  try {
    const r = await capture(
      [
        ctx.gpg ?? "gpg",
        "--homedir",
        ctx.gnupgHome,
        ...["--batch", "--no-tty", "--disable-dirmngr", "--no-auto-key-retrieve", "--no-autostart"],
        ...["--import-options", "import-clean", "--import"],
      ],
      { input: parsed.binary, maxBytes: 1024 * 1024, timeoutMs: GPG_IMPORT_LIMITS.readMs },
    );
    status = r.status;
    stderr = r.stderr;
  } catch {
    status = 2;
    stderr = enc("qubes-air: gpg could not be run\n");
  }
  await recordResult(ctx.audit, request, `exit ${status}`, "", log);
  // gpg's messages name the imported keys and their user IDs: the client's own data.
  await io.stderr.write(stderr).catch(() => {});
  return status;
}

async function readAll(stdin: ByteSource, ms: number): Promise<Uint8Array | "too-large" | "timeout"> {
  const parts: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    for (;;) {
      const c = await Promise.race([stdin.read(), late]);
      if (c === "timeout") return c;
      if (c === null) break;
      size += c.length;
      if (size > GPG_IMPORT_LIMITS.maxBytes) return "too-large";
      parts.push(c);
    }
  } finally {
    clearTimeout(timer);
  }
  return concatBytes(parts);
}
