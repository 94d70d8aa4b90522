/**
 * Registration of remote qubes in dom0 through the Admin API, from sys-remote (docs/enrolment.md):
 * the Qubes admin client tools installed in sys-remote (qubes-core-admin-client) turn each
 * command into Admin API calls that dom0's policy (the dom0 package's 45-qubes-air-admin.policy)
 * allows only for RemoteVMs this qube created:
 *
 *   qvm-create --class RemoteVM --label L NAME   admin.vm.Create.RemoteVM (dom0 tags it created-by-<us>)
 *   qvm-prefs NAME relayvm <this qube>           admin.vm.property.Set +relayvm
 *   qvm-prefs NAME transport_rpc qubesair.NoiseProxy    admin.vm.property.Set +transport_rpc
 *   qvm-prefs NAME remote_name NAME              admin.vm.property.Set +remote_name
 *   qvm-remove --force NAME                      admin.vm.Remove
 *
 * Used by the daemon (after a pairing) and by `qubes-air unpair --remove-qube` without a daemon.
 * Must never: go through a shell, pass a name that is not a qube name, or quote the tools' output
 * unbounded or with control characters.
 */
import { assert, ConfigError } from "../core/errors.ts";
import { isQubeName } from "../core/qrexec/names.ts";
import { Service } from "../core/qrexec/services.ts";
import { platform, SpawnError } from "../platform/index.ts";
import type { ByteSource } from "../transport/transport.ts";

/** The tools' own output kept for a message: enough for their one-line errors. */
const MAX_TOOL_OUTPUT = 4096;

export interface RemoteVmSpec {
  readonly name: string;
  readonly label: string;
  /** This qube's name in dom0: the RemoteVM's relayvm. */
  readonly relay: string;
}

/** A qvm-* tool refused or failed; the message carries its (cleaned) words and what to do. */
export class AdminToolError extends ConfigError {}

/**
 * Creates the RemoteVM, or, when this qube can already see one of that name (dom0 lists to it
 * only the qubes it created: a device paired again), sets its properties again. Resolves
 * "created" or "updated".
 */
export async function registerRemoteVm(
  spec: RemoteVmSpec,
  env?: Record<string, string>,
): Promise<"created" | "updated"> {
  assert(isQubeName(spec.name) && isQubeName(spec.relay), "names are checked before registration");
  const ours = (await tool(["qvm-check", "--quiet", spec.name], env, true)) === 0;
  if (!ours) await tool(["qvm-create", "--class", "RemoteVM", "--label", spec.label, spec.name], env);
  else await tool(["qvm-prefs", spec.name, "label", spec.label], env);
  await tool(["qvm-prefs", spec.name, "relayvm", spec.relay], env);
  await tool(["qvm-prefs", spec.name, "transport_rpc", Service.NoiseProxy], env);
  await tool(["qvm-prefs", spec.name, "remote_name", spec.name], env);
  return ours ? "updated" : "created";
}

export async function removeRemoteVm(name: string, env?: Record<string, string>): Promise<void> {
  assert(isQubeName(name), "names are checked before removal");
  await tool(["qvm-remove", "--force", name], env);
}

/** Runs a tool; a failure throws AdminToolError unless `status` asks for the exit code. */
async function tool(argv: readonly string[], env?: Record<string, string>, status = false): Promise<number> {
  let child: Awaited<ReturnType<typeof platform.spawn>>;
  try {
    child = await platform.spawn(argv, { stdin: "ignore", stdout: "ignore", ...(env ? { env } : {}) });
  } catch (e) {
    if (e instanceof SpawnError) {
      throw new AdminToolError(
        `${argv[0]} is not installed in this qube: install qubes-core-admin-client (Debian: ` +
          "qubes-core-admin-client, Fedora: python3-qubesadmin), or turn registration off (--no-register)",
      );
    }
    throw e;
  }
  const [stderr, exit] = await Promise.all([collect(child.stderr), child.exited]);
  if (exit.code === 0 || (status && exit.code !== null)) return exit.code ?? 1;
  const words = clean(stderr) || `exit ${exit.code ?? exit.signal}`;
  throw new AdminToolError(`${argv.slice(0, 3).join(" ")} ... failed in dom0's Admin API: ${words}`);
}

async function collect(source: ByteSource | null): Promise<Uint8Array> {
  if (source === null) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const chunk = await source.read();
    if (chunk === null) break;
    if (size < MAX_TOOL_OUTPUT) chunks.push(chunk.subarray(0, MAX_TOOL_OUTPUT - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks);
}

/** The tool's stderr as one line of printable text. */
function clean(bytes: Uint8Array): string {
  return new TextDecoder()
    .decode(bytes)
    .replace(/[^\x20-\x7e]+/g, " ")
    .trim();
}
